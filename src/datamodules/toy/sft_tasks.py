"""Toy-world SFT: the toy tasks as instruction/response rows, served through the real datasets' interfaces."""

from __future__ import annotations

import random
from typing import Any

from src.datamodules.sft import SFTDataModule
from src.datamodules.templates import Segment, alpaca_prompt, chat_segments
from src.toyworld.tasks import make_problems
from src.utils.checks import require_choice


class ToyWorldSFTDataModule(SFTDataModule):
    """Instruction tasks from ``src.toyworld``: train rows from the train split, validation from the held-out one.

    Each train row takes one of its problem's valid phrasings at random (seeded), so the data itself is diverse.
    """

    def __init__(self, num_train: int = 4000, num_val: int = 200, template: str = "chat",
                 kinds: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("tokenizer", "toy")
        super().__init__(path="toyworld", **kwargs)
        require_choice("data.template", template, ("alpaca", "chat"))
        self.num_train, self.num_val, self.template = num_train, num_val, template
        self.kinds = tuple(kinds) if kinds else None

    def problems(self, split: str) -> list:
        n = self.num_train if split == "train" else self.num_val
        limit = self.limit if split == "train" else self.val_limit
        return make_problems(min(n, limit or n), "train" if split == "train" else "test", self.seed, self.kinds)

    def load_split(self, split: str) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}-{split}-phrasing")
        return [{"prompt": p.prompt, "response": rng.choice(p.responses)} for p in self.problems(split)]

    def prompt_text(self, prompt: str) -> str:
        """The generation prompt for ``prompt``, rendered exactly as training renders it (for evaluation)."""
        if self.template == "alpaca":
            return alpaca_prompt(prompt)
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def segments(self, row: dict[str, Any]) -> list[Segment]:
        if self.template == "alpaca":
            return [(alpaca_prompt(row["prompt"]), False), (row["response"] + self.tokenizer.eos_token, True)]
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
        return chat_segments(self.tokenizer, messages)
