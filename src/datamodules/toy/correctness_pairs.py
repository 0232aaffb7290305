"""Toy-world correctness pairs: a correct, well-formatted answer over a wrong or unformatted one."""

from __future__ import annotations

from typing import Any

from src.datamodules.preference import Pair, PreferenceDataModule, chat_pair
from src.datamodules.templates import alpaca_prompt
from src.datamodules.toy.splits import ToyWorldSplits
from src.toyworld.tasks import make_preferences


class ToyWorldPreferenceDataModule(ToyWorldSplits, PreferenceDataModule):
    """Toy-world pairs (``src.toyworld.tasks.make_preferences``): a correct, well-formatted answer over a wrong or
    unformatted one. ``problems`` / ``prompt_text`` let the TaskAccuracy callback measure held-out accuracy."""

    def __init__(self, num_train: int = 2000, num_val: int = 200, template: str = "chat",
                 kinds: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("tokenizer", "toy")
        super().__init__(path="toyworld", **kwargs)
        self.toy_settings(num_train, num_val, template, kinds)

    def load_split(self, split: str) -> list[dict[str, str]]:
        return make_preferences(*self.split_size(split), self.seed, self.kinds)

    def pair(self, row: dict[str, str]) -> Pair:
        if self.template == "alpaca":
            head, eos = (alpaca_prompt(row["prompt"]), False), self.tokenizer.eos_token
            return [head, (row["chosen"] + eos, True)], [head, (row["rejected"] + eos, True)]
        prompt = [{"role": "user", "content": row["prompt"]}]
        return tuple(chat_pair(self.tokenizer, prompt, [{"role": "assistant", "content": row[side]}])
                     for side in ("chosen", "rejected"))  # type: ignore[return-value]
