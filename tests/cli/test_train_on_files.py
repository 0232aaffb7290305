"""``python train.py data=sft_file|prefs_file data.path=<file>`` through the real CLI, on a 3-row file written here:
the format is detected and logged, one row is held out, the toy-only callback turns itself off, and the run ends on a
validation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY_MODEL, write_jsonl

SFT_ROWS = [
    {"instruction": "Add 17 and 25.", "input": "", "output": "17 + 25 = 42. The answer is 42."},
    {"instruction": "Reverse the word.", "input": "stone", "output": "The reverse of stone is enots."},
    {"instruction": "How many letters are in 'garden'?", "input": "", "output": "garden has 6 letters."},
]
PREF_ROWS = [
    {"prompt": "What is 6 times 7?", "chosen": "6 * 7 = 42. The answer is 42.", "rejected": "The answer is 48."},
    {"prompt": "Reverse the word 'lamp'.", "chosen": "The reverse of lamp is pmal.", "rejected": "lamp"},
    {"prompt": "What is 15 minus 9?", "chosen": "15 - 9 = 6. The answer is 6.", "rejected": "The answer is 5."},
]
CASES = {  # kind: (rows, overrides, the detection line, the metric the run must end on)
    "sft": (SFT_ROWS, ["data=sft_file"],
            "SFT format detected: alpaca (prompt=instruction, input=input, response=output)", "val/ce"),
    "prefs": (PREF_ROWS, ["experiment=dpo_toy", "data=prefs_file"],
              "preference format detected: flat (prompt=prompt, chosen=chosen, rejected=rejected)",
              "val/rewards/accuracies"),
}


@pytest.mark.parametrize("kind", CASES)
def test_train_on_a_three_row_file(tmp_path, kind):
    rows, overrides, detected, metric = CASES[kind]
    write_jsonl(tmp_path / "mine.jsonl", rows)
    args = [sys.executable, str(ROOT / "train.py"), *overrides, "data.path=mine.jsonl", "trainer.max_steps=3",
            "hydra.run.dir=run", "cpu_threads=1", "++callbacks.progress_bar=null", *TINY_MODEL]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "data.path=mine.jsonl: holding out 1 of its 3 rows as validation (data.val_size=0.05, seed 42)" in log
    assert f"data.path=mine.jsonl: {detected}" in log
    assert log.count("TaskAccuracy callback: off") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert math.isfinite(metrics[metric]) and "val/accuracy" not in metrics
    assert metrics["train/tokens_seen"] > 0
