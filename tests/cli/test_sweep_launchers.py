"""Sweeps through other launchers and with several processes per job, through the real CLI.

Every run is a fresh ``python train.py`` with the distributed environment variables stripped (Lightning starts
rank 1 itself), as in tests/integration/test_ddp_equivalence.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from tests.helpers import ROOT

TINY_RUN = ["experiment=quickstart", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
            "data.num_train=48", "data.num_val=8", "trainer.max_steps=3", "trainer.val_check_interval=3",
            "callbacks.task_accuracy.num_prompts=2", "callbacks.hf_export=null", "callbacks.progress_bar=null",
            "validate_before_fit=false", "cpu_threads=1"]
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK")


def sweep(sweep_dir, *args: str) -> dict[str, dict]:
    """Run ``train.py -m`` into ``sweep_dir``; each job's ``metrics.json`` by job number."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    # PYTHONPATH: a submitit job unpickles the task in a fresh interpreter, which must find src/.
    env |= {"PROJECT_ROOT": str(sweep_dir.parent), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *TINY_RUN, *args,
                          f"hydra.sweep.dir={sweep_dir}"], cwd=sweep_dir.parent, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))}


class RecordLearningRate(Callback):
    """Writes this rank's learning rate to ``<dirpath>/lr_rank<global rank>.txt`` when training starts."""

    def __init__(self, dirpath: str):
        self.dirpath = dirpath

    def on_train_start(self, trainer, pl_module):
        lr = trainer.optimizers[0].defaults["lr"]
        (Path(self.dirpath) / f"lr_rank{trainer.global_rank}.txt").write_text(repr(lr))


def weights(job_dir) -> dict[str, torch.Tensor]:
    return torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_its_own_process(tmp_path):
    """``hydra/launcher=local``: the SLURM launcher's machinery (pickled jobs, one process each) on this machine."""
    metrics = sweep(tmp_path / "sweep", "hydra/launcher=local", "seed=1,2")
    assert sorted(metrics) == ["0", "1"]
    assert metrics["0"]["val/ce"] != metrics["1"]["val/ce"]  # two seeds, two runs
    logs = sorted((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2  # one submitit job (process) per sweep job


@pytest.mark.slow
def test_every_rank_of_a_swept_ddp_job_uses_that_jobs_values(tmp_path):
    """Two learning rates, each job two CPU processes at batch 4. Both ranks of job n report job n's rate (by
    default Lightning starts rank 1 with the sweep's whole command line), and job n's weights are those of one
    process at batch 8 with that rate (tests/integration/test_ddp_equivalence.py: 2 x 4 = 1 x 8), which also fails
    if the second job trains alone in the first job's process group."""
    lrs = "module.optimizer.lr=1e-3,3e-3"
    record = [f"++callbacks.record_lr._target_={__name__}.RecordLearningRate",
              "++callbacks.record_lr.dirpath=${paths.output_dir}"]
    ddp = sweep(tmp_path / "ddp", lrs, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                "data.batch_size=4", *record)
    one = sweep(tmp_path / "one", lrs, "data.batch_size=8")
    assert sorted(ddp) == sorted(one) == ["0", "1"]
    for job, lr in (("0", "0.001"), ("1", "0.003")):  # each rank, asked directly
        assert [(tmp_path / "ddp" / job / f"lr_rank{r}.txt").read_text() for r in (0, 1)] == [lr, lr]
    for job in "01":
        expected, got = weights(tmp_path / "one" / job), weights(tmp_path / "ddp" / job)
        for name, value in expected.items():
            where = f"job {job}, {name}"
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5, msg=lambda m, w=where: f"{w}: {m}")
    first, second = weights(tmp_path / "one" / "0"), weights(tmp_path / "one" / "1")
    assert max((first[k] - second[k]).abs().max().item() for k in first) > 1e-3  # the two values are two runs


@pytest.mark.slow
def test_every_rank_of_an_optuna_trial_uses_its_sampled_values(tmp_path):
    """Optuna samples each trial's rate in the sweeping process; both ranks of every trial report it."""
    sweep_dir = tmp_path / "optuna"
    sweep(sweep_dir, "hparams_search=gem_optuna", "experiment=gem_toy", "hydra.sweeper.n_trials=2", "trainer=ddp",
          "trainer.accelerator=cpu", "trainer.devices=2", "data.batch_size=4",
          f"++callbacks.record_lr._target_={__name__}.RecordLearningRate",
          "++callbacks.record_lr.dirpath=${paths.output_dir}")
    for job in "01":
        overrides = (sweep_dir / job / ".hydra" / "overrides.yaml").read_text()
        (sampled,) = [line.split("=", 1)[1] for line in overrides.splitlines() if "module.optimizer.lr=" in line]
        reported = [(sweep_dir / job / f"lr_rank{r}.txt").read_text() for r in (0, 1)]
        assert reported == [repr(float(sampled))] * 2, (job, sampled, reported)
