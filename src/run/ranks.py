"""Ranks 1.. of a multi-process job that Lightning starts itself (``trainer=ddp`` on one machine) run that job's
config, also when the job is one of a sweep, and the next job of the sweep starts its own.

Lightning starts them as ``python <script> <sys.argv[1:]> hydra.run.dir=<hydra.run.dir>`` (its
``_hydra_subprocess_cmd``). Inside a multirun, sys.argv is the whole sweep (``-m module.optimizer.lr=1e-3,2e-3``)
and ``hydra.run.dir`` is not the job's directory, so rank 1 would run a sweep of its own and train beside rank 0
with another job's values; under the submitit launchers sys.argv is submitit's, not the script's. Here each rank is
one run of the job: the script, the job's own overrides (the sweeper's choice for it, Optuna's sampled values
included), ``hydra.mode=RUN`` (an ``hparams_search`` option sets MULTIRUN), in the job's directory.
On SLURM every rank is a task that SLURM starts with the job's pickled config, and this is not used.

A sweep's jobs run one after another in one process (Hydra's basic launcher, Optuna). Lightning leaves the job's
process group and the variables it set to start the ranks (``LOCAL_RANK``, ``MASTER_PORT``, ...) behind, and the next
job would take them for ranks started by someone else and train alone in the dead group; :func:`job_ranks` ends both
with the job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.strategies.launchers import subprocess_script
from omegaconf import OmegaConf

# Hydra overrides that belong to the sweep, or that the command below sets itself.
SWEEP_ONLY = ("hydra.mode", "hydra.sweep", "hydra.sweeper", "hydra/sweeper", "hydra.launcher", "hydra/launcher",
              "hydra.run.dir", "hydra.job.name", "hydra.output_subdir")
# What Lightning's launcher sets in its own process to start the ranks (lightning.fabric ... subprocess_script).
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def rank_command(local_rank: int, script: str | Path) -> tuple[list[str], str]:
    """``(argv, cwd)`` that starts ``local_rank`` of the current Hydra job as a single run of it."""
    hydra_cfg = HydraConfig.get()
    overrides = OmegaConf.to_container(hydra_cfg.overrides, resolve=False)
    kept = [o for o in overrides["hydra"] if not o.lstrip("+~").startswith(SWEEP_ONLY)]
    own = [f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"', f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
           "hydra.output_subdir=null", "hydra.mode=RUN"]  # output_subdir: rank 0 alone writes .hydra/
    return [sys.executable, str(script), *overrides["task"], *kept, *own], hydra_cfg.runtime.cwd


@contextmanager
def job_ranks(script: str | Path) -> Iterator[None]:
    """Within: Lightning starts the ranks of this Hydra job with :func:`rank_command`. After: the job's process group
    and the launch variables Lightning set are gone (those set before the job, by torchrun or SLURM, stay)."""
    subprocess_script._hydra_subprocess_cmd = partial(rank_command, script=script)
    before = {name: os.environ.get(name) for name in LAUNCH_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
