"""Toy-world SFT: the toy tasks as instruction/response rows, served through the real datasets' interfaces."""

from __future__ import annotations

import random
from typing import Any

from src.datamodules.sft import SFTDataModule
from src.datamodules.templates import Segment, alpaca_prompt, chat_segments
from src.datamodules.toy.splits import ToyWorldSplits


class ToyWorldSFTDataModule(ToyWorldSplits, SFTDataModule):
    """Instruction tasks from ``src.toyworld``: train rows from the train split, validation from the held-out one.

    Each train row takes one of its problem's valid phrasings at random (seeded), so the data itself is diverse.
    """

    def __init__(self, num_train: int = 4000, num_val: int = 200, template: str = "chat",
                 kinds: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("tokenizer", "toy")
        super().__init__(path="toyworld", **kwargs)
        self.toy_settings(num_train, num_val, template, kinds)

    def load_split(self, split: str) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}-{split}-phrasing")
        return [{"prompt": p.prompt, "response": rng.choice(p.responses)} for p in self.problems(split)]

    def segments(self, row: dict[str, Any]) -> list[Segment]:
        if self.template == "alpaca":
            return [(alpaca_prompt(row["prompt"]), False), (row["response"] + self.tokenizer.eos_token, True)]
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
        return chat_segments(self.tokenizer, messages)
