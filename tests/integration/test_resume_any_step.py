"""``python train.py`` interrupted at an arbitrary step and resumed gives the uninterrupted run, bit for bit, for DPO
with a precomputed reference and for ALRIGHT and MAXRIGHT interleaving; resuming a finished run changes nothing.

Each interrupted run is three processes in one run directory: SIGTERM during step 4 of 8 (mid-epoch, mid-schedule,
not a validation step, so the preemption checkpoint holds step 4), then ``ckpt_path=auto`` SIGKILLed inside step 6's
accumulation window (rows past the checkpoint are logged and the partial window is lost), then ``ckpt_path=auto``
to the end. Validation (and its checkpoint) comes every 3 steps and the run ends on one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

import train
from tests.helpers import ROOT, TINY, TINY_MODEL, compose_cfg

STEPS, VAL_EVERY, TERM_AT, KILL_AT = 8, 3, 3, 5  # TERM_AT/KILL_AT: global_step when the signal arrives
# Wall time and memory, which differ between any two runs.
UNREPRODUCIBLE = ("cost/", "train/tokens_per_sec", "train/samples_per_sec", "train/step_time_sec",
                  "train/peak_memory_gib", "train/mfu")

STREAMS = ["data.sft.num_train=24", "data.sft.num_val=8", "data.sft.batch_size=4", "data.sft.eval_batch_size=8",
           "data.prefs.num_train=16", "data.prefs.num_val=6", "data.prefs.batch_size=2", "data.prefs.eval_batch_size=6"]
# LoRA with dropout: every training forward draws from the global RNG, which the checkpoint must carry too.
DROPOUT = "model.lora={r:4,alpha:8,dropout:0.2}"
EXPERIMENTS = {
    # An epoch is 6 micro-batches: the checkpoint is mid-epoch and the resumed part crosses an epoch boundary.
    "dpo_precomputed": ["experiment=dpo_toy", "module.reference=precomputed", "data.num_train=24", "data.num_val=8",
                        "data.batch_size=4", "data.eval_batch_size=8", "callbacks.task_accuracy.num_prompts=2"],
    "alright": ["experiment=alright_toy", *STREAMS],
    # MAXRIGHT probes at steps 0, 3 and 6, so the checkpoint at step 4 holds stale gaps (the first resumed process
    # probes at step 6 for the first time); with these optima and step size it trains SFT first, then DPO.
    "maxright": ["experiment=maxright_toy", "interleave.refresh_every=3", "interleave.optima={sft:6.1,dpo:0.0}",
                 "module.optimizer.lr=2e-2", *STREAMS],
}


class Interrupt(Callback):
    """Sends ``signal`` to this process when micro-batch ``micro`` (0-based) of optimizer step ``step`` starts: a
    real ``kill``. On SIGTERM Lightning stops at the end of that micro-batch; SIGKILL ends the process there."""

    def __init__(self, step: int, signal: str, micro: int = 0):
        self.step, self.signal, self.micro = step, signal, micro
        self.at = (-1, -1)  # (global step, micro-batch within it) of the batch starting now

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        step, micro = self.at
        self.at = (step, micro + 1) if step == trainer.global_step else (trainer.global_step, 0)
        if self.at == (self.step, self.micro):
            os.kill(os.getpid(), getattr(signal, self.signal))


def interrupt(step: int, sig: str, micro: int = 0) -> list[str]:
    return [f"++callbacks.interrupt._target_={__name__}.Interrupt", f"++callbacks.interrupt.step={step}",
            f"++callbacks.interrupt.signal={sig}", f"++callbacks.interrupt.micro={micro}"]


def train_py(run_dir: Path, overrides: list[str], *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "train.py", *TINY, *TINY_MODEL, *overrides, DROPOUT, "callbacks.hf_export=null",
            f"module.reference_cache_dir={run_dir.parent / 'reference'}", f"hydra.run.dir={run_dir}", *extra]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)


def logged(run_dir: Path) -> dict[tuple[int, str], str]:
    """``(step, metric) -> value`` as written in metrics.csv (exact decimal text), wall time and memory left out."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return {(int(row["step"]), k): v for row in csv.DictReader(f) for k, v in row.items()
                if v and k not in ("step", "epoch") and not k.startswith(UNREPRODUCIBLE)}


@pytest.mark.slow
@pytest.mark.parametrize("experiment, accumulate", [("dpo_precomputed", 1), ("dpo_precomputed", 2), ("alright", 2),
                                                    ("maxright", 2)])  # 45-60 s each on 2 shared cores
def test_interrupted_at_any_step_resumes_exactly(tmp_path, experiment, accumulate):
    overrides = [*EXPERIMENTS[experiment], f"trainer.max_steps={STEPS}", "trainer.log_every_n_steps=1",
                 f"trainer.accumulate_grad_batches={accumulate}",
                 f"trainer.val_check_interval={VAL_EVERY * accumulate}"]  # counts micro-batches
    full, part = tmp_path / "full", tmp_path / "part"
    assert (done := train_py(full, overrides)).returncode == 0, done.stderr[-3000:]

    termed = train_py(part, overrides, *interrupt(TERM_AT, "SIGTERM", micro=accumulate - 1), "ckpt_path=auto")
    state = checkpoint(part)
    assert state["global_step"] == TERM_AT + 1, termed.stderr[-3000:]  # the preemption checkpoint, not a validation's
    if experiment == "dpo_precomputed":  # the reference table rides in the checkpoint: the cache is not needed
        assert set(state["reference"]["tables"]) == {"train", "val"}
        cached = list((tmp_path / "reference").glob("*.pt"))
        assert len(cached) == 2  # train and val, computed by the full run and read by this one
        for path in cached:
            path.unlink()
    else:  # the streams' positions and the schedule's state (ALRIGHT's generator, MAXRIGHT's stale gaps)
        assert state["InterleaveDataModule"]["sft"]["consumed"] > 0
        schedule = state["callbacks"]["InterleaveScheduler"]["schedule"]
        assert "generator" in schedule if experiment == "alright" else max(schedule["ages"].values()) > 0

    killed = train_py(part, overrides, *interrupt(KILL_AT, "SIGKILL", micro=accumulate - 1), "ckpt_path=auto")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert checkpoint(part)["global_step"] == TERM_AT + 1
    assert max(step for step, _ in logged(part)) > TERM_AT + 1  # the killed process logged past the checkpoint

    assert (resumed := train_py(part, overrides, "ckpt_path=auto")).returncode == 0, resumed.stderr[-3000:]
    expected, got = logged(full), logged(part)
    assert {step for step, metric in expected if metric == "train/loss"} == set(range(1, STEPS + 1))  # steps done
    if experiment != "dpo_precomputed":  # the schedule switched objectives (ALRIGHT: on both sides of the checkpoint)
        chosen = [float(expected[step, "schedule/is_dpo"]) for step in range(1, STEPS + 1)]
        halves = [set(chosen[:TERM_AT + 1]), set(chosen[TERM_AT + 1:])] if experiment == "alright" else [set(chosen)]
        assert all(half == {0.0, 1.0} for half in halves), chosen
    assert got == expected
    final, resumed_final = checkpoint(full), checkpoint(part)
    assert resumed_final["global_step"] == final["global_step"] == STEPS
    for name, value in final["state_dict"].items():
        assert torch.equal(resumed_final["state_dict"][name], value), name
    # metrics.json: each metric's last value in this process, so an objective that the resumed process never trained
    # (MAXRIGHT after step 4) has no train/* entry there; the rest, the final validation included, is the same.
    resumed_metrics, full_metrics = final_metrics(part), final_metrics(full)
    assert {k for k in full_metrics if k.startswith("val/")} <= set(resumed_metrics)
    assert resumed_metrics == {k: full_metrics[k] for k in resumed_metrics}


def final_metrics(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if not k.startswith(UNREPRODUCIBLE)}


@pytest.mark.slow
def test_resuming_a_finished_run_changes_nothing(tmp_path, caplog):
    """``ckpt_path=auto`` on a run whose last.ckpt is at max_steps trains nothing, says so and keeps metrics.json;
    a metrics.json that is missing (or ``{}``, as an earlier version wrote) comes back from the last validation."""
    cfg = [*TINY, *TINY_MODEL, "data.num_train=32", "data.num_val=8", "callbacks.task_accuracy.num_prompts=2",
           "trainer.max_steps=4", "trainer.val_check_interval=2", "callbacks.hf_export=null", "ckpt_path=auto"]
    finished = train.train(compose_cfg(cfg, tmp_path))
    files = {name: (tmp_path / name).read_bytes() for name in ("metrics.json", "csv/metrics.csv",
                                                                "checkpoints/last.ckpt")}
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4

    with caplog.at_level(logging.INFO, logger="src.run.outputs"):
        again = train.train(compose_cfg(cfg, tmp_path))
    assert "already complete at step 4" in caplog.text
    assert again == finished and "val/ce" in again
    assert {name: (tmp_path / name).read_bytes() for name in files} == files

    final_validation = {k: v for k, v in finished.items() if k.startswith("val/")}
    for broken in ("{}", None):  # the bug's empty file, or none at all
        path = tmp_path / "metrics.json"
        if broken:
            path.write_text(broken)
        else:
            path.unlink()
        assert train.train(compose_cfg(cfg, tmp_path)) == json.loads(path.read_text())
        assert json.loads(path.read_text()) == pytest.approx(final_validation, rel=1e-6)
