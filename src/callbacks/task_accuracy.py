"""Greedy-decode held-out toy-world prompts and score the final answers, so learning is visible as accuracy."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.toyworld.tasks import answer_is_correct
from src.utils.generation import generate


class TaskAccuracy(Callback):
    """Logs ``val/accuracy`` on ``num_prompts`` held-out problems after every validation.

    Needs a DataModule with ``problems(split)`` and ``prompt_text(prompt)`` (the toy world's).
    """

    def __init__(self, num_prompts: int = 64, max_new_tokens: int = 48, batch_size: int = 32):
        self.num_prompts, self.max_new_tokens, self.batch_size = num_prompts, max_new_tokens, batch_size

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        if not (hasattr(dm, "problems") and hasattr(dm, "prompt_text")):
            raise ValueError(
                f"TaskAccuracy callback: {type(dm).__name__} has no problems() / prompt_text(); the callback scores "
                "toy-world answers only. Use callbacks=default with this data, or toy-world data "
                "(data=toyworld, toyworld_prefs, toyworld_style_prefs or toyworld_corpus)")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        dm = trainer.datamodule
        problems = dm.problems("val")[: self.num_prompts]
        prompts = [dm.prompt_text(p.prompt) for p in problems]
        outputs = generate(pl_module.model, dm.tokenizer, prompts, self.max_new_tokens, self.batch_size)
        correct = sum(answer_is_correct(text, p.answer) for text, p in zip(outputs, problems))
        pl_module.log("val/accuracy", torch.tensor(correct / max(1, len(problems))), prog_bar=True)
