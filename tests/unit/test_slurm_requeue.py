"""In a plain SLURM batch job (no submitit), rank 0 requeues the job after the preemption checkpoint, by the job id
Lightning's own auto-requeue uses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

from src.callbacks.preemption import slurm_requeue_command


def trainer(environment, rank_zero=True):
    return SimpleNamespace(strategy=SimpleNamespace(cluster_environment=environment), is_global_zero=rank_zero)


@pytest.fixture
def slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return monkeypatch


def test_requeue_command_names_the_job(slurm_job):
    assert slurm_requeue_command(trainer(SLURMEnvironment())) == ["scontrol", "requeue", "123"]
    slurm_job.setenv("SLURM_ARRAY_JOB_ID", "120")
    slurm_job.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert slurm_requeue_command(trainer(SLURMEnvironment())) == ["scontrol", "requeue", "120_3"]


def test_no_requeue_off_slurm_off_rank_zero_or_when_disabled(slurm_job):
    assert slurm_requeue_command(trainer(LightningEnvironment())) is None
    assert slurm_requeue_command(trainer(SLURMEnvironment(), rank_zero=False)) is None
    assert slurm_requeue_command(trainer(SLURMEnvironment(auto_requeue=False))) is None
