"""Run the evaluation tasks of ``eval=<task | suite>`` at every validation, on a small prompt budget.

Logs ``eval/<task>/<metric>`` (e.g. ``eval/gsm8k/accuracy``) beside ``val/*``, so the task metric is a curve over
training, not only a number at the end (``train.py ... eval=<task>`` also runs the full task after training).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from src.eval.run import as_tasks, run_tasks
from src.eval.run_template import data_template
from src.eval.tasks.task import EvalContext
from src.utils.checks import require

BOOKKEEPING = ("prompts", "samples_per_prompt", "seconds", "tokens", "sequences")


class EvalDuringValidation(Callback):
    """``tasks``: the instantiated ``eval`` node (null: off); ``num_prompts`` per task per validation (0: off)."""

    def __init__(self, tasks: Any = None, num_prompts: int = 16):
        require(num_prompts >= 0, "callbacks.eval_tasks.num_prompts", num_prompts, ">= 0 (0 turns it off)")
        self.tasks = as_tasks(tasks) if tasks else {}
        self.num_prompts = num_prompts

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.tasks or not self.num_prompts:
            return
        # Tasks with template: null prompt as this run trains; num_prompts is a fixed random subset of each task.
        ctx = EvalContext(pl_module.model, trainer.datamodule.tokenizer, limit=self.num_prompts, progress=False,
                          template=data_template(trainer.datamodule).name)
        metrics, _, _ = run_tasks(self.tasks, ctx)
        for task, values in metrics.items():
            for key, value in values.items():
                if key not in BOOKKEEPING:
                    pl_module.log(f"eval/{task}/{key}", float(value))
