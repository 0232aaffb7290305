"""On SIGTERM (what a cluster sends before preempting or cancelling a job), save ``last.ckpt`` before exiting."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class PreemptionCheckpoint(Callback):
    """Lightning turns SIGTERM into ``SIGTERMException`` at the end of the current batch; this callback then writes
    ``<dirpath>/last.ckpt``, so ``ckpt_path=auto`` (or the explicit path) continues from that step rather than from
    the last validation. Inside an accumulation window the partial gradients cannot be saved, so there it keeps the
    previous ``last.ckpt`` (the run resumes from the last validation instead) and says so; likewise on an epoch's
    last batch, where Lightning stops before closing the epoch and that half-closed state did not resume exactly."""

    def __init__(self, dirpath: str, filename: str = "last.ckpt"):
        self.path = Path(dirpath) / filename

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.current.completed % trainer.accumulate_grad_batches or progress.is_last_batch:
            log.warning("SIGTERM inside an accumulation window or at an epoch's end (step %d): keeping the previous "
                        "%s", trainer.global_step, self.path)
            return
        trainer.save_checkpoint(self.path)
        log.warning("SIGTERM: saved %s at step %d before exiting", self.path, trainer.global_step)
