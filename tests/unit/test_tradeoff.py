"""The trade-off utility on hand-written run directories: loading, gaps, relative cost, table and plot."""

from __future__ import annotations

import json
import math

import pytest

from src.eval.tradeoff import load_run, main, summarize

HEADER = "cost/dpo_peak_mb,cost/train_seconds,epoch,step,val/dpo_loss,val/sft_loss\n"


def write_run(root, name, target, lam, rows):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / "csv").mkdir()
    (run / ".hydra" / "config.yaml").write_text(f"interleave:\n  _target_: {target}\n  lam: {lam}\n")
    (run / "csv" / "metrics.csv").write_text(HEADER + "".join(rows))
    return run


@pytest.fixture
def runs(tmp_path):
    seq = write_run(tmp_path, "seq", "src.interleave.schedules.Sequential", 0.5, [
        ",,0,0,0.69,3.0\n",  # the validation before training
        "500,10.0,0,10,,\n",
        ",,0,10,0.30,\n", ",,0,10,,2.0\n",  # val metrics of one step on two rows; row step = optimizer steps done
    ])
    alr = write_run(tmp_path, "alr", "src.interleave.schedules.Alright", 0.5, [
        ",,0,0,0.69,3.0\n", "520,10.5,0,10,,\n", ",,0,10,0.25,1.8\n"])
    return seq, alr


def test_load_run_merges_the_validation_grid(runs):
    run = load_run(runs[0])
    assert (run.method, run.lam, run.steps, run.sft, run.dpo) == ("sequential", 0.5, [0, 10], [3.0, 2.0], [0.69, 0.30])
    assert run.seconds == 10.0 and run.peak_mb == 500.0


def test_summary_gaps_distance_and_cost_relative_to_sequential(runs):
    rows = summarize([load_run(d) for d in runs], {"sft": 1.5, "dpo": 0.1})
    alright = next(r for r in rows if r["method"] == "alright")
    assert alright["sft_gap"] == pytest.approx(0.3) and alright["dpo_gap"] == pytest.approx(0.15)
    assert alright["ideal_distance"] == pytest.approx(math.hypot(0.3, 0.15))
    assert alright["time_vs_sequential_%"] == pytest.approx(5.0)
    assert next(r for r in rows if r["method"] == "sequential")["time_vs_sequential_%"] == pytest.approx(0.0)


def test_cli_writes_plot_and_table(runs, tmp_path):
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 1.5, "dpo": 0.1}))
    main([str(d) for d in runs] + ["--optima", str(optima), "--out-dir", str(tmp_path / "out")])
    table = (tmp_path / "out" / "tradeoff.md").read_text()
    assert "| alright | 0.5 | 10 | 1.800 | 0.250 |" in table and "+5.0" in table
    assert (tmp_path / "out" / "tradeoff.png").stat().st_size > 10_000
