"""OmegaConf resolvers the config tree uses."""

from __future__ import annotations

import sys


def sweep_label(experiment: str) -> str:
    """A multirun's directory name: its experiment, or ``experiments`` when the command sweeps over several.

    Read from the command line, not the config: Hydra resolves ``hydra.sweep.dir`` once for the sweep and again in
    each job, where ``experiment`` is one swept value, and both must name the same directory.
    """
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "experiment" and ("," in value or "(" in value):
            return "experiments"
    return experiment
