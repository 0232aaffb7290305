"""Every value of a logged row was computed at that row's step, and rows are numbered as checkpoints are.

A run logging every 10 steps must write, at steps 10 and 20, exactly what the same run logging every step writes
there: the diagnostics (``train/ce``, ``train/entropy``, DPO's rewards) are computed only on written steps, so a
predicate off by one pairs a step's loss with another step's diagnostics.
"""

from __future__ import annotations

import csv

import pytest
import torch

import train
from tests.helpers import TINY, TINY_MODEL, compose_cfg

# Wall-clock and memory readings differ between any two runs; everything else is a function of the weights.
TIMED = ("tokens_per_sec", "samples_per_sec", "step_time_sec", "peak_memory_gib", "mfu", "_seconds", "_peak_mb")
RUN = TINY + TINY_MODEL + ["++callbacks.task_accuracy.num_prompts=2", "trainer.max_steps=20",
                           "trainer.val_check_interval=10", "++trainer.limit_val_batches=1"]


def train_rows(out) -> dict[int, dict[str, float]]:
    """``{step: {metric: value}}`` of the training rows of a run's metrics.csv (timings left out)."""
    with open(out / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {int(r["step"]): {k: float(v) for k, v in r.items() if v and k != "step" and not k.endswith(TIMED)}
            for r in rows if r.get("train/loss")}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["experiment=quickstart", "data.num_val=16"],
    ["experiment=gem_toy", "data.num_val=16"],
    ["experiment=gem_toy", "data.num_val=16", "module.loss_impl=chunked", "module.loss_chunk_size=16"],
    ["experiment=dpo_toy", "data.num_val=16"],
    ["experiment=alright_toy", "data.sft.num_train=64", "data.prefs.num_train=64"],
], ids=["ce", "gem", "gem-chunked", "dpo", "alright"])
def test_rows_hold_their_own_steps_values(tmp_path, overrides):
    every_10 = train_rows(_run(tmp_path / "every10", overrides + ["trainer.log_every_n_steps=10"]))
    every_1 = train_rows(_run(tmp_path / "every1", overrides + ["trainer.log_every_n_steps=1"]))
    assert sorted(every_10) == [10, 20]  # numbered by optimizer steps done, as checkpoints are
    assert sorted(every_1) == list(range(1, 21))
    diagnostics = {"train/ce", "train/entropy", "train/sft_entropy", "train/logits/chosen"}  # written steps only
    for step in (10, 20):
        assert set(every_10[step]) == set(every_1[step])
        assert diagnostics & set(every_10[step]), every_10[step]  # something beyond the loss is checked
        for name, value in every_10[step].items():
            assert value == pytest.approx(every_1[step][name], rel=1e-6, abs=1e-7), (step, name)


def _run(out, overrides):
    train.train(compose_cfg(RUN + overrides, out))
    return out


def test_validation_rows_and_checkpoints_share_the_step(tmp_path):
    """The validation after the 10th step is row 10, and the checkpoint it triggers is step000010."""
    out = _run(tmp_path, ["experiment=quickstart", "data.num_val=16", "trainer.max_steps=10",
                          "trainer.val_check_interval=5"])
    with open(out / "csv" / "metrics.csv") as f:
        validated = [int(r["step"]) for r in csv.DictReader(f) if r.get("val/ce")]
    assert validated == [0, 5, 10]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10
    best = [int(p.stem.removeprefix("step")) for p in (out / "checkpoints").glob("step*.ckpt")]
    assert len(best) == 1 and best[0] in (5, 10)  # the best validation's step, by the same count
