"""``hydra/launcher=slurm`` writes the sbatch file a cluster needs, from the composed config, without a cluster."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import setup_globals
from hydra.utils import instantiate
from submitit.slurm.slurm import SlurmExecutor

from src.configs import register_configs
from tests.helpers import ROOT

CLUSTER = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.num_nodes=2",
           "trainer.devices=8", "ckpt_path=auto"]


class Submitted(Exception):
    """Raised in place of calling sbatch, carrying the file it would have submitted."""


def sbatch_file(overrides: list[str], tmp_path, monkeypatch) -> str:
    """The sbatch script the launcher writes for a 2-job sweep of ``overrides``."""
    register_configs()
    setup_globals()  # the ${now:...} resolver of hydra.sweep.dir
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.log_dir={tmp_path}"], return_hydra_config=True)

    def submit(self, command):
        raise Submitted(self._make_submission_file_text(command, "uid"))

    monkeypatch.setattr(SlurmExecutor, "_submit_command", submit)
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "is srun installed here?"
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    with pytest.raises(Submitted) as submitted:
        launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    return str(submitted.value)


def test_allocation_follows_the_trainer(tmp_path, monkeypatch):
    """2 nodes x 8 GPUs: 8 tasks (ranks) per node, each job of the sweep one element of a job array, SIGUSR2 two
    minutes before the limit (the signal submitit requeues on and callbacks.preemption saves on)."""
    script = sbatch_file(CLUSTER, tmp_path, monkeypatch)
    for flag in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu", "--cpus-per-task=8",
                 "--time=240", "--signal=USR2@120", "--array=0-1%2"):
        assert f"#SBATCH {flag}\n" in script, (flag, script)
    assert "srun" in script and "submitit.core._submit" in script


def test_devices_auto_is_refused_by_name(tmp_path, monkeypatch):
    """SLURM needs a number of tasks per node; the error names both keys, the trainer's and the launcher's."""
    with pytest.raises(Exception, match=r"(?s)trainer\.devices.*'auto'.*hydra\.launcher\.\w+_per_node"):
        sbatch_file([*CLUSTER, "trainer.devices=auto"], tmp_path, monkeypatch)
