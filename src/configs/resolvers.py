"""OmegaConf resolvers the config tree uses."""

from __future__ import annotations

import sys


def smollm2_dir(cache_dir: str) -> str:
    """``${smollm2_dir:${paths.cache_dir}}``: the converted SmolLM2 directory, converting the GGUF the first time it
    resolves (about 20 s; then a directory check). ``model=smollm2_135m`` sets ``model.name_or_path`` to it, so the
    DataModule's tokenizer (``${oc.select:model.name_or_path,...}``) loads from the same directory as the weights."""
    from src.modules.smollm2 import smollm2_dir as convert_once

    return str(convert_once(cache_dir))


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
