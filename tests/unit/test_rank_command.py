"""Rank 1.. of a swept multi-process job start as one run of that job (``src/run/ranks.py``), not as the sweep."""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from src.run.ranks import rank_command
from tests.helpers import ROOT, compose_cfg


def test_an_optuna_trials_ranks_get_its_sampled_values(tmp_path):
    """The job's overrides as the sweeper made them (Optuna's sampled values appended to the command's), the
    hydra overrides that are not the sweep's, RUN mode (hparams_search sets MULTIRUN) and the job's directory."""
    task = ["hparams_search=gem_optuna", "experiment=gem_toy", "trainer=ddp", "module.beta=0.6138",
            "module.optimizer.lr=0.00123"]
    hydra_overrides = ["hydra.mode=MULTIRUN", "hydra.sweeper.n_trials=2", "hydra/launcher=local",
                       "hydra.sweep.dir=logs/s", "hydra.verbose=true"]
    compose_cfg(["experiment=gem_toy"], tmp_path)
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg):
        hydra_cfg.overrides.task, hydra_cfg.overrides.hydra = task, hydra_overrides
        hydra_cfg.runtime.output_dir = str(tmp_path / "3")
    argv, cwd = rank_command(1, ROOT / "train.py")
    assert argv[:2] == [sys.executable, str(ROOT / "train.py")]
    assert "-m" not in argv and "--multirun" not in argv
    assert argv[2:] == [*task, "hydra.verbose=true", f'hydra.run.dir="{tmp_path / "3"}"',
                        f"hydra.job.name={hydra_cfg.job.name}_rank1", "hydra.output_subdir=null", "hydra.mode=RUN"]
    assert cwd == hydra_cfg.runtime.cwd
