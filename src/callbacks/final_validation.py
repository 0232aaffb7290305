"""Make the last training step a validation step, so every run ends with validation metrics and a checkpoint."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


class FinalValidation(Callback):
    """Any ``trainer.max_steps`` works with any experiment, and the run always validates at its end.

    - An integer ``val_check_interval`` longer than the run is shortened to the run (Lightning refuses an interval
      longer than the epoch, e.g. an experiment's 25 with ``trainer.max_steps=20``).
    - On the batch that completes the last optimizer step, or the last batch of the last epoch, the callback asks
      the loop to stop; Lightning then validates at once (its early-stopping path), and the checkpoint callbacks
      save the final weights. A step that validates anyway is not validated twice.
    So ``metrics.json``, the sweeper's ``optimized_metric`` and ``last.ckpt`` always describe the final weights.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        interval, window = trainer.val_check_interval, trainer.accumulate_grad_batches
        if stage == "fit" and isinstance(interval, int) and 0 < trainer.max_steps * window < interval:
            log.info("trainer.val_check_interval=%d is longer than the run (%d batches): validating at its end",
                     interval, trainer.max_steps * window)
            trainer.val_check_interval = trainer.max_steps * window

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loop = trainer.fit_loop
        last_step = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        max_epochs = loop.max_epochs if loop.max_epochs is not None else -1
        last_epoch = max_epochs > 0 and trainer.current_epoch >= max_epochs - 1
        if last_step or (last_epoch and loop.epoch_loop.batch_progress.is_last_batch):
            trainer.should_stop = True
