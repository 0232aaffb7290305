"""A killed and resumed run's metrics.csv holds its whole history once: every (step, metric) from step 0, as if it
had never stopped."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections import Counter

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from src.callbacks.step_numbers import StepLearningRate, StepNumbers
from src.loggers.csv import ResumableCSVLogger
from tests.helpers import ROOT, TINY, TINY_MODEL

BOOKKEEPING = ("step", "epoch")


def history(path) -> list[tuple[int, str, float]]:
    """``(step, metric, value)`` for every filled cell of a metrics.csv."""
    with open(path, newline="") as f:
        return [(int(row["step"]), k, float(v)) for row in csv.DictReader(f) for k, v in row.items()
                if v and k not in BOOKKEEPING]


def columns(path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


class Regression(L.LightningModule):
    """y = x1 + x2 by SGD. ``train/late`` first appears at step 7 (after the step-6 checkpoint, before the kill) and
    ``val/ppl`` at step 9 (only the resumed part sees it): the header changes on both sides of the kill."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(2, 1)

    def loss(self, batch):
        x, y = batch
        return (self.lin(x) - y).pow(2).mean()

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss)
        if self.global_step >= 7:
            self.log("train/late", 2 * loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("val/loss", loss)
        if self.global_step >= 9:
            self.log("val/ppl", loss.exp())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader() -> DataLoader:
    x = torch.randn(24, 2, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)  # 6 steps an epoch


class Killed(RuntimeError):
    pass


class KillAt(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed


def run(out, ckpt_path=None, kill_at=None) -> None:
    """12 steps, validating every 3 (and once before training, as train.py does), checkpointing each validation;
    rows numbered by steps done, as train.py numbers them."""
    callbacks = [ModelCheckpoint(dirpath=out / "checkpoints", save_last=True), StepLearningRate("step"), StepNumbers()]
    trainer = L.Trainer(accelerator="cpu", max_steps=12, val_check_interval=3, check_val_every_n_epoch=None,
                        log_every_n_steps=1, logger=ResumableCSVLogger(out, ckpt_path=ckpt_path),
                        callbacks=callbacks + ([KillAt(kill_at)] if kill_at else []), default_root_dir=out,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    module = Regression()
    if ckpt_path is None:
        trainer.validate(module, loader(), verbose=False)
    trainer.fit(module, loader(), loader(), ckpt_path=ckpt_path)


def test_killed_and_resumed_history_equals_the_uninterrupted_one(tmp_path):
    run(tmp_path / "full")
    part = tmp_path / "part"
    with pytest.raises(Killed):
        run(part, kill_at=8)
    metrics = part / "csv" / "metrics.csv"
    with open(metrics, "a") as f:
        f.write(",0.05,1")  # a line torn by the kill (it was step 10-something): not a row at step 1
    assert max(step for step, _, _ in history(metrics)) > 6  # rows past the step-6 checkpoint were written
    assert "train/late" in columns(metrics)

    run(part, ckpt_path=part / "checkpoints" / "last.ckpt")
    resumed, full = history(metrics), history(tmp_path / "full" / "csv" / "metrics.csv")
    assert [pair for pair, n in Counter((s, k) for s, k, _ in resumed).items() if n > 1] == []
    assert sorted(resumed) == sorted(full)  # the same rows, values included: the resume is exact
    assert {s for s, k, _ in resumed if k == "train/loss"} == set(range(1, 13))
    assert sorted(s for s, k, _ in resumed if k == "val/loss") == [0, 3, 6, 9, 12]
    assert columns(metrics) == ["epoch", "lr-SGD", "step", "train/late", "train/loss", "val/loss", "val/ppl"]


class SigkillAt(L.Callback):
    """A real ``kill -9`` of the training process when optimizer step ``step`` starts (for train.py subprocesses)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_train_py_killed_with_sigkill_resumes_its_history(tmp_path):
    """``python train.py`` killed at step 25 of 40 (checkpoint at 20), resumed from last.ckpt into its directory."""
    run_dir = tmp_path / "run"
    args = [sys.executable, "train.py", *TINY, *TINY_MODEL, "data.num_train=400", "data.num_val=16",
            "data.batch_size=4", "++callbacks.task_accuracy.num_prompts=2", "trainer.max_steps=40",
            "trainer.val_check_interval=10", "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}"]
    kill = [f"++callbacks.kill._target_={__name__}.SigkillAt", "++callbacks.kill.step=25"]
    killed = subprocess.run(args + kill, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    metrics = run_dir / "csv" / "metrics.csv"
    before = history(metrics)
    assert max(s for s, _, _ in before) > 20  # the kill left rows past the checkpoint

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 20
    resumed = subprocess.run(args + [f"ckpt_path={ckpt}"], check=False, cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = history(metrics)
    assert [pair for pair, n in Counter((s, k) for s, k, _ in after).items() if n > 1] == []
    assert [row for row in after if row[0] <= 20] == [row for row in before if row[0] <= 20]
    assert {s for s, k, _ in after if k == "train/loss"} == set(range(1, 41))
    assert sorted(s for s, k, _ in after if k == "val/ce") == [0, 10, 20, 30, 40]
    log = (run_dir / "train.log").read_text()
    assert log.count(f"run directory: {run_dir}") == 2  # both processes said where they write
    assert "first (step 0)" in log and "final (step 40)" in log
    card = (run_dir / "hf" / "README.md").read_text()
    assert "for 40 optimizer steps" in card and f"ckpt_path={ckpt}" in card
