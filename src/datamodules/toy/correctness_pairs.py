"""Toy-world correctness pairs: a correct, well-formatted answer over a wrong or unformatted one."""

from __future__ import annotations

from typing import Any

from src.datamodules.preference import Pair, PreferenceDataModule, chat_pair
from src.datamodules.templates import alpaca_prompt
from src.toyworld.tasks import Problem, make_preferences, make_problems
from src.utils.checks import require_choice


class ToyWorldPreferenceDataModule(PreferenceDataModule):
    """Toy-world pairs (``src.toyworld.tasks.make_preferences``): a correct, well-formatted answer over a wrong or
    unformatted one. ``problems`` / ``prompt_text`` let the TaskAccuracy callback measure held-out accuracy."""

    def __init__(self, num_train: int = 2000, num_val: int = 200, template: str = "chat",
                 kinds: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("tokenizer", "toy")
        super().__init__(path="toyworld", **kwargs)
        require_choice("data.template", template, ("alpaca", "chat"))
        self.num_train, self.num_val, self.template = num_train, num_val, template
        self.kinds = tuple(kinds) if kinds else None

    def _size(self, split: str) -> tuple[int, str]:
        n, limit = (self.num_train, self.limit) if split == "train" else (self.num_val, self.val_limit)
        return min(n, limit or n), "train" if split == "train" else "test"

    def load_split(self, split: str) -> list[dict[str, str]]:
        return make_preferences(*self._size(split), self.seed, self.kinds)

    def problems(self, split: str) -> list[Problem]:
        """The problems behind the ``split`` pairs (same seed and size), for answer-accuracy evaluation."""
        return make_problems(*self._size(split), self.seed, self.kinds)

    def prompt_text(self, prompt: str) -> str:
        """The generation prompt for ``prompt``, rendered exactly as training renders it."""
        if self.template == "alpaca":
            return alpaca_prompt(prompt)
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    def pair(self, row: dict[str, str]) -> Pair:
        if self.template == "alpaca":
            head, eos = (alpaca_prompt(row["prompt"]), False), self.tokenizer.eos_token
            return [head, (row["chosen"] + eos, True)], [head, (row["rejected"] + eos, True)]
        prompt = [{"role": "user", "content": row["prompt"]}]
        return tuple(chat_pair(self.tokenizer, prompt, [{"role": "assistant", "content": row[side]}])
                     for side in ("chosen", "rejected"))  # type: ignore[return-value]
