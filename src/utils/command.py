"""The command line of the running Hydra job, as typed: for model cards, summaries and evaluation headers."""

from __future__ import annotations

import shlex
import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def command_line(script: str = "train.py") -> str:
    """``python <script>`` and this job's overrides (one job of a sweep: its own values), as typed."""
    try:
        overrides = HydraConfig.get().overrides
    except ValueError:  # HydraConfig is not set: called outside a Hydra job
        return " ".join([f"python {script}", *map(shlex.quote, sys.argv[1:])])
    # resolve=False: an override like logger.x=${ckpt_path} stays as typed. Hydra adds hydra.mode itself.
    typed = OmegaConf.to_container(overrides, resolve=False)
    hydra_overrides = [o for o in typed["hydra"] if not o.startswith("hydra.mode=")]
    return " ".join([f"python {script}", *map(shlex.quote, typed["task"] + hydra_overrides)])
