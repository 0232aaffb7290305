"""``callback=validation_examples``: each validation batch's values, whose weighted means are the logged values.

The per-batch lines are what a paired bootstrap over held-out examples resamples (experiments/smollm2_interleave), so
they must add up to exactly what the run logged at the same step, for both streams of an interleave run and for a
plain SFT run, where ``val/ce`` is token-weighted.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict

import pytest

from tests.helpers import ROOT, TINY, TINY_MODEL

RUN = [*TINY, *TINY_MODEL, "trainer.max_steps=4", "trainer.val_check_interval=2", "cpu_threads=1",
       "+callback@callbacks.val_examples=validation_examples"]


def train(tmp_path, overrides: list[str]):
    subprocess.run([sys.executable, "train.py", *RUN, *overrides, f"hydra.run.dir={tmp_path}"], cwd=ROOT, check=True,
                   capture_output=True)
    lines = [json.loads(line) for line in (tmp_path / "val_examples.jsonl").read_text().splitlines()]
    logged: dict[int, dict[str, float]] = defaultdict(dict)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            logged[int(row["step"])].update({k: float(v) for k, v in row.items() if v and k.startswith("val/")})
    return lines, logged


def weighted_mean(lines: list[dict], key: str, weight: str = "weight") -> float:
    rows = [line for line in lines if key in line]
    return sum(line[key] * line[weight] for line in rows) / sum(line[weight] for line in rows)


@pytest.mark.slow
def test_interleave_lines_add_up_to_the_logged_losses(tmp_path):
    lines, logged = train(tmp_path, ["experiment=alright_toy", "data.sft.num_train=64", "data.prefs.num_train=64",
                                     "data.sft.num_val=6", "data.prefs.num_val=5", "data.sft.eval_batch_size=1",
                                     "data.prefs.eval_batch_size=2"])
    assert sorted({line["step"] for line in lines}) == [0, 2, 4]
    for step in (0, 2, 4):
        at = [line for line in lines if line["step"] == step]
        assert [line["objective"] for line in at].count("sft") == 6  # one line per example at batch size 1
        assert sum(line["weight"] for line in at if line["objective"] == "dpo") == 5  # 3 batches of <= 2 pairs
        for key in ("val/sft_loss", "val/dpo_loss", "val/rewards/accuracies"):
            assert weighted_mean(at, key) == pytest.approx(logged[step][key], rel=1e-5), (step, key)
    first, last = ([line["val/dpo_loss"] for line in lines if line["step"] == s and "val/dpo_loss" in line]
                   for s in (0, 4))
    assert first != last  # the lines are each validation's own, not one copy


@pytest.mark.slow
def test_sft_lines_give_the_token_weighted_val_ce(tmp_path):
    lines, logged = train(tmp_path, ["experiment=quickstart", "data.num_val=7", "data.eval_batch_size=3"])
    for step in (0, 2, 4):
        at = [line for line in lines if line["step"] == step]
        assert [line["weight"] for line in at] == [3, 3, 1]
        assert weighted_mean(at, "val/ce", "tokens") == pytest.approx(logged[step]["val/ce"], rel=1e-5)
        assert weighted_mean(at, "val/ce") != pytest.approx(logged[step]["val/ce"], rel=1e-7)  # tokens, not rows
