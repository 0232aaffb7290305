"""What the toy-world DataModules share: their problem sets by split, and prompts rendered as training renders them."""

from __future__ import annotations

from src.datamodules.templates import alpaca_prompt
from src.toyworld.tasks import Problem, make_problems
from src.utils.checks import require_choice

TEMPLATES = ("alpaca", "chat")


class ToyWorldSplits:
    """A mixin for a DataModule (which gives ``seed``, ``limit``, ``val_limit`` and ``tokenizer``): ``num_train``
    problems of the toy world's train split and ``num_val`` of its held-out test split, capped by ``data.limit`` /
    ``data.val_limit``, of the given ``kinds`` only (all by default). ``problems`` and ``prompt_text`` are what the
    ``TaskAccuracy`` callback scores a model on."""

    num_train: int
    num_val: int
    template: str = "chat"
    kinds: tuple[str, ...] | None = None

    def toy_settings(self, num_train: int, num_val: int, template: str = "chat",
                     kinds: list[str] | None = None) -> None:
        require_choice("data.template", template, TEMPLATES)
        self.num_train, self.num_val, self.template = num_train, num_val, template
        self.kinds = tuple(kinds) if kinds else None

    def split_size(self, split: str) -> tuple[int, str]:
        """``(problems, the toy world's split)`` for the DataModule's ``split``: train, or the held-out test."""
        n, limit = (self.num_train, self.limit) if split == "train" else (self.num_val, self.val_limit)
        return min(n, limit or n), "train" if split == "train" else "test"

    def problems(self, split: str) -> list[Problem]:
        """The problems behind the ``split`` rows (same seed and size), for answer-accuracy evaluation."""
        return make_problems(*self.split_size(split), self.seed, self.kinds)

    def prompt_text(self, prompt: str) -> str:
        """The generation prompt for ``prompt``, rendered exactly as training renders it (for evaluation)."""
        if self.template == "alpaca":
            return alpaca_prompt(prompt)
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
