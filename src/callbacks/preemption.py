"""On SIGTERM, SIGUSR1 or SIGUSR2 (what a cluster sends before preempting, cancelling or timing out a job), save
``last.ckpt`` at the end of the current step before exiting."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class PreemptionCheckpoint(Callback):
    """Lightning turns SIGTERM into ``SIGTERMException`` at the end of the current batch; this callback then writes
    ``<dirpath>/last.ckpt``, so ``ckpt_path=auto`` (or the explicit path) continues from that step rather than from
    the last validation. Inside an accumulation window the partial gradients cannot be saved, so there it keeps the
    previous ``last.ckpt`` (the run resumes from the last validation instead) and says so; likewise on an epoch's
    last batch, where Lightning stops before closing the epoch and that half-closed state did not resume exactly.

    ``signals`` (SIGUSR1, the usual ``sbatch --signal=USR1@<s>`` and Lightning's requeue signal; SIGUSR2, submitit's)
    are handled the same way during ``fit``: the handler only asks Lightning to stop after the batch, as SIGTERM
    does. It is installed in ``setup``, before Lightning installs its own, so Lightning's SLURM auto-requeue (which
    saves ``hpc_ckpt`` from inside the signal handler, mid-step) never takes the signal. The handler that held the
    signal before (submitit's, which requeues the job) runs at exit, after the checkpoint is written and Lightning
    has torn down; in a plain SLURM batch job (none before, Lightning's auto-requeue on) rank 0 requeues it at exit,
    as Lightning would have.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt", signals: tuple[str, ...] = ("SIGUSR1", "SIGUSR2")):
        self.path = Path(dirpath) / filename
        self.signals = [signal.Signals[name] for name in signals]
        self.previous: dict[signal.Signals, Any] = {}
        self.received: signal.Signals | None = None
        self.trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.trainer, self.received = trainer, None
        for signum in self.signals:
            self.previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._restore()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.trainer is None:  # outside fit (Lightning may put this handler back after an exception)
            self._forward(signal.Signals(signum), frame)
            return
        log.warning("%s: stopping at the end of this step", signal.Signals(signum).name)
        self.received = signal.Signals(signum)
        self.trainer._signal_connector.received_sigterm = True  # what Lightning's own SIGTERM handler sets

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        received = self.received
        self._restore()  # no teardown hook follows an exception
        if not isinstance(exception, SIGTERMException):
            return
        name = received.name if received else "SIGTERM"
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.current.completed % trainer.accumulate_grad_batches or progress.is_last_batch:
            log.warning("%s inside an accumulation window or at an epoch's end (step %d): keeping the previous %s",
                        name, trainer.global_step, self.path)
        else:
            trainer.save_checkpoint(self.path)
            log.warning("%s: saved %s at step %d before exiting", name, self.path, trainer.global_step)
        if received is None:
            return
        if callable(self.previous.get(received)):
            # Not now: submitit's handler requeues and calls sys.exit, which would skip Lightning's teardown.
            atexit.register(self.previous[received], received, None)
        elif (command := slurm_requeue_command(trainer)) is not None:  # plain sbatch: what Lightning would have done
            atexit.register(subprocess.call, command)

    def _restore(self) -> None:
        if self.trainer is None:  # not installed (not fitting, or already restored)
            return
        self.trainer = None
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _forward(self, signum: signal.Signals, frame: FrameType | None) -> None:
        """Behave as the handler this one replaced: call it, or take the default action."""
        handler = self.previous.get(signum, signal.SIG_DFL)
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


def slurm_requeue_command(trainer: Trainer) -> list[str] | None:
    """``scontrol requeue <job>`` on a SLURM job's global rank 0 where Lightning's auto-requeue is on, else None
    (the job id as Lightning's ``_SignalConnector`` forms it: ``<array job>_<task>`` in a job array)."""
    environment = trainer.strategy.cluster_environment
    if not (isinstance(environment, SLURMEnvironment) and environment.auto_requeue and trainer.is_global_zero):
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    return ["scontrol", "requeue", job]
