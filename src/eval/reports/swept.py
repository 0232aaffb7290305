"""What a sweep varied: the command-line overrides that differ between runs (``module.beta=0.3``), read from each run's
``.hydra/overrides.yaml``, which Hydra writes for ``train.py`` and ``eval.py`` jobs alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def overrides(run_dir: Path) -> dict[str, str]:
    """``{key: value}`` as typed on the command line (``+``/``++``/``~`` dropped from the key); empty without the
    file."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    found = {}
    for override in OmegaConf.to_container(OmegaConf.load(path)):
        key, _, value = str(override).partition("=")
        found[key.lstrip("+~")] = value
    return found


def swept(run_dirs: list[Path], configs: list[DictConfig | None]) -> list[dict[str, str]]:
    """Per run, ``{key: value}`` for each override whose value is not the same in every run (first-seen order). A run
    that did not set a key shows its value all the same: the config group it chose (``.hydra/hydra.yaml``), else its
    config's value, else ``default``."""
    typed = [overrides(d) for d in run_dirs]
    keys = [k for k in dict.fromkeys(k for o in typed for k in o) if len({o.get(k) for o in typed}) > 1]
    return [{k: o[k] if k in o else _value(d, cfg, k) for k in keys} for o, d, cfg in zip(typed, run_dirs, configs)]


def numeric_axis(settings: list[dict[str, str]]) -> tuple[str, list[float]] | None:
    """``(key, values)`` when the runs differ in one setting only and every value is a number (a line against it
    reads better than bars), else ``None``."""
    keys = {k for s in settings for k in s}
    if len(keys) != 1 or any(len(s) != 1 for s in settings):
        return None
    key = keys.pop()
    try:
        values = [float(s[key]) for s in settings]
    except ValueError:
        return None
    return (key, values) if len(set(values)) > 1 else None


def _value(run_dir: Path, config: DictConfig | None, key: str) -> str:
    hydra = run_dir / ".hydra" / "hydra.yaml"
    choices = OmegaConf.load(hydra).hydra.runtime.choices if hydra.is_file() else None
    for node in (choices, config):  # a group (model=tiny) first: its config node is a whole dict
        value = _select(node, key)
        if value is not None:
            return text(value)
    return "default"


def _select(node: DictConfig | None, key: str) -> Any:
    if node is None:
        return None
    if key in node:  # a group with a slash (module/optimizer) is one key of the choices
        return node[key]
    return OmegaConf.select(node, key, throw_on_resolution_failure=False)


def text(value: Any) -> str:
    """A value as a label shows it: ``0.3`` (not ``0.30000000000000004``), ``1e-05``."""
    return f"{value:g}" if isinstance(value, float) else str(value)
