"""Greedy-decode held-out toy-world prompts and score the final answers, so learning is visible as accuracy."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.eval.engine.generation import generate
from src.toyworld.tasks import answer_is_correct

log = logging.getLogger(__name__)


class TaskAccuracy(Callback):
    """Logs ``val/accuracy`` on ``num_prompts`` held-out problems after every validation.

    Needs a DataModule with ``problems(split)`` and ``prompt_text(prompt)`` (the toy world's); on any other data it
    turns itself off at setup, with one INFO line, so a toy recipe runs unchanged on a data file.
    """

    def __init__(self, num_prompts: int = 64, max_new_tokens: int = 48, batch_size: int = 32):
        self.num_prompts, self.max_new_tokens, self.batch_size = num_prompts, max_new_tokens, batch_size
        self.enabled = True

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        was_enabled, self.enabled = self.enabled, hasattr(dm, "problems") and hasattr(dm, "prompt_text")
        if was_enabled and not self.enabled:  # e.g. experiment=quickstart (callbacks=toyworld) on data=sft_file
            log.info("TaskAccuracy callback: off, %s is not toy-world data (no problems() / prompt_text()), so "
                     "val/accuracy is not logged; callbacks=default leaves it out", type(dm).__name__)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        dm = trainer.datamodule
        problems = dm.problems("val")[: self.num_prompts]
        prompts = [dm.prompt_text(p.prompt) for p in problems]
        outputs = generate(pl_module.model, dm.tokenizer, prompts, self.max_new_tokens, self.batch_size)
        correct = sum(answer_is_correct(text, p.answer) for text, p in zip(outputs, problems))
        pl_module.log("val/accuracy", torch.tensor(correct / max(1, len(problems))), prog_bar=True)
