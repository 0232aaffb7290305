"""One step number everywhere: a logged row's ``step`` is the number of optimizer steps done when it was written."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor


class StepNumbers(Callback):
    """Numbers every logged row (``metrics.csv``, W&B, the before/after table) by ``trainer.global_step``, the count
    checkpoints are named by (``step=200.ckpt``) and resume from.

    Lightning writes a row at its own counter of stepped batches, read *before* it moves on: the training row of the
    10th step says 9, the validation after 200 steps says 199, yet the validation before training says 0 and the
    checkpoint 200. Lightning takes a metric named ``step`` as the row's step instead, so this logs
    ``global_step`` under that name: after the step on training rows (the row holds the loss of the step that just
    finished), and at the end of each validation. Lightning pops it from the row before the loggers see it; it
    stays in ``callback_metrics``, which ``finish_run`` leaves out of ``metrics.json``.
    """

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for name, value in self.numbers(trainer).items():
            pl_module.log(name, value, on_step=True, on_epoch=False, batch_size=1)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for name, value in self.numbers(trainer).items():
            pl_module.log(name, value, on_epoch=True, batch_size=1)

    @staticmethod
    def numbers(trainer: Trainer) -> dict[str, float]:
        # Lightning adds the epoch column only to rows without a logged step, so it is logged here too.
        return {"step": float(trainer.global_step), "epoch": float(trainer.current_epoch)}


class StepLearningRate(LearningRateMonitor):
    """Lightning's ``LearningRateMonitor`` (``logging_interval: step``), with each learning rate in the row of the
    step that used it: Lightning's writes it at the stepped-batch counter before the step, one row early."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if self.logging_interval == "epoch" or not trainer._logger_connector.should_update_logs:
            return
        stats = self._extract_stats(trainer, "step" if self.logging_interval is None else "any")
        if stats:
            pl_module.log_dict(stats, on_step=True, on_epoch=False, batch_size=1)
