"""SIGUSR1 (SLURM's ``--signal``) and SIGUSR2 (submitit's) save ``last.ckpt`` at the step they stop, as SIGTERM does,
and the handler that held the signal before (submitit's requeue) still runs, once the run has exited."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import src.callbacks.preemption as preemption
from tests.helpers import compose_cfg
from tests.integration.test_train import SMALL, At, train_with


def send(signum):
    return lambda pl_module: os.kill(os.getpid(), signum)  # delivered at once, to this (the main) thread


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2], ids=["SIGUSR1", "SIGUSR2"])
def test_user_signal_saves_the_step_it_stops_at(tmp_path, monkeypatch, signum):
    """Validation (and its checkpoint) every 2 steps; the signal during the third step: last.ckpt holds step 3, and
    the handler installed before the run (here a recorder standing in for submitit's) is scheduled for exit."""
    seen, at_exit = [], []
    monkeypatch.setattr(preemption.atexit, "register", lambda fn, *args: at_exit.append((fn, args)))
    before = signal.signal(signum, lambda *args: seen.append(args[0]))
    try:
        cfg = compose_cfg(SMALL + ["trainer.max_steps=8", "data.num_train=128"], tmp_path)
        with pytest.raises(SystemExit):  # Lightning's SIGTERMException, raised at the end of that batch
            train_with(cfg, At(2, send(signum)))
        assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
        assert seen == []  # not during the run: submitit's handler would exit at once, mid-teardown
        ((fn, args),) = [(fn, args) for fn, args in at_exit if args == (signum, None)]  # (tqdm registers too)
        fn(*args)
        assert seen == [signum]
        # Whatever handler is left behind only forwards to the one from before the run.
        os.kill(os.getpid(), signum)
        assert seen == [signum, signum]
    finally:
        signal.signal(signum, before)
