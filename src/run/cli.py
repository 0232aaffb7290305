"""Command-line help that Hydra does not give: the valid keys when an override names an unknown one."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, RangeSweep
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf

NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'.*(?:not in struct|not in '\w+')", re.S)


def run_with_key_help(main: Callable[[], Any], config_dir: Path, config_name: str) -> None:
    """Run a ``@hydra.main`` entry point; when it fails (Hydra printed why), also say which keys an unknown key's
    node does have."""
    try:
        main()
    except SystemExit as exit_:
        if exit_.code:
            hint = unknown_key_help(sys.argv[1:], config_dir, config_name)
            if hint:
                print(hint, file=sys.stderr)
        raise


def unknown_key_help(args: list[str], config_dir: Path, config_name: str) -> str | None:
    """For each ``key=value`` in ``args`` whose key the composed config lacks, the keys its parent node does have.

    ``None`` when every key exists or composition fails for another reason (Hydra's own message covers that). Sweep
    values count by their first element, so ``module.betaa=0.3,0.5`` is explained too.
    """
    overrides = _representative(args)
    unknown: list[str] = []
    cfg = None
    for _ in range(len(overrides) + 1):
        try:
            cfg = _compose(config_dir, config_name, [o for o in overrides if o.split("=", 1)[0] not in unknown])
            break
        except ConfigCompositionException as err:
            match = NOT_IN_STRUCT.search(f"{err} {err.__cause__}")
            if match is None or match.group(1) in unknown:
                return None
            unknown.append(match.group(1))
        except HydraException:
            return None
    if cfg is None or not unknown:
        return None
    return "\n".join(_explain(cfg, key) for key in unknown)


def _representative(args: list[str]) -> list[str]:
    """The overrides of one job of the command: flags and hydra.* dropped, a sweep reduced to its first value."""
    candidates = [a for a in args if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    try:
        parsed: list[Override] = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return []
    kept = []
    for override in parsed:
        value = override.value()
        if isinstance(value, ChoiceSweep):
            value = value.list[0]
        elif isinstance(value, RangeSweep):
            value = value.start
        elif override.is_sweep_override():
            continue  # glob(...), interval(...): nothing single to compose
        text = override.get_value_element_as_str() if value is override.value() else str(value)
        kept.append(f"{override.get_key_element()}={text}" if not override.is_delete() else override.input_line)
    return kept


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def _explain(cfg: DictConfig, key: str) -> str:
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    while parent and not isinstance(OmegaConf.select(cfg, parent), DictConfig):
        parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    node = OmegaConf.select(cfg, parent) if parent else cfg
    where = f"'{parent}'" if parent else "the top level"
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    keys = ", ".join(k for k in node.keys() if not str(k).startswith("_"))
    if OmegaConf.get_type(node) is not dict:  # generated from a signature: these are all the arguments there are
        return f"Unknown config key '{key}'. Valid keys of {where} ({target}): {keys}."
    return f"Unknown config key '{key}'. Valid keys of {where}: {keys}. (To add a new key: +{key}=...)"
