"""Hydra multiruns through the real CLI: one directory per job, each ending on a validation, values to the sweeper."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import yaml

from tests.helpers import ROOT

SHORT = ["trainer.max_steps=2", "++trainer.limit_val_batches=1", "++callbacks.task_accuracy.num_prompts=2",
         "data.num_train=64", "++callbacks.progress_bar=null", "callbacks.hf_export=null"]


def run(args: list[str], root) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROJECT_ROOT": str(root)}
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=root, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-5000:]
    return out


def job_metrics(sweep_dir) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))}


def test_value_sweep_writes_one_directory_per_job(tmp_path):
    run(["-m", "experiment=gem_toy", "module.beta=0.3,0.9", *SHORT], tmp_path)
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns" / "gem_toy").iterdir()  # <time>/
    metrics = job_metrics(sweep)
    assert sorted(metrics) == ["0", "1"]
    assert all(math.isfinite(m["val/ce"]) for m in metrics.values())
    betas = [yaml.safe_load((sweep / n / ".hydra" / "config.yaml").read_text())["module"]["beta"] for n in "01"]
    assert betas == [0.3, 0.9]


def test_experiment_sweep_shares_one_directory(tmp_path):
    run(["-m", "experiment=gem_toy,convex_toy", *SHORT], tmp_path)
    multiruns = tmp_path / "logs" / "train" / "multiruns"
    assert [p.name for p in multiruns.iterdir()] == ["experiments"]
    (sweep,) = (multiruns / "experiments").iterdir()
    assert sorted(job_metrics(sweep)) == ["0", "1"]
    assert (sweep / "multirun.yaml").exists()


def test_optuna_search_receives_each_jobs_metric(tmp_path):
    run(["hparams_search=gem_optuna", "experiment=gem_toy", "hydra.sweeper.n_trials=2", *SHORT], tmp_path)
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns" / "gem_toy").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [m["val/ce"] for m in job_metrics(sweep).values()]
    assert len(values) == 2
    assert result["best_value"] == min(values)
    assert set(result["best_params"]) == {"module.beta", "module.optimizer.lr"}
