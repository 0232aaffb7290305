"""Thin wrappers over ``hydra.utils.instantiate`` with errors that name the config node."""

from __future__ import annotations

import re
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from src.utils.checks import group_of, rekey


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as err:
        # Hydra wraps the real cause (e.g. an out-of-range value) in a long chain: surface it first, on one line,
        # with its keys named where the failing node is (data.val_size -> eval.data.val_size under eval.py).
        cause = err.__cause__ or err
        if not _rebuildable(cause):
            raise err
        where = re.search(r"full_key: (\S+)", str(err))
        target = re.search(r"target '([^']+)'", str(err))
        message = _rekeyed(str(cause), node, where.group(1)) if where else str(cause)
        raise type(cause)(f"{message} (while instantiating {target.group(1) if target else node.get('_target_')})"
                          ) from err


def _rekeyed(message: str, root: DictConfig, where: str) -> str:
    """``message`` naming the keys of the node at ``where`` (a key of the whole config, which ``root`` is part of)."""
    group = group_of(where)
    parts = where.split(".")
    for start in range(len(parts) + 1):  # root may be cfg.eval, and where "eval.tasks.ppl.data"
        failing = OmegaConf.select(root, ".".join(parts[start:])) if start < len(parts) else root
        if group and isinstance(failing, DictConfig):
            return rekey(message, group, where, failing.keys())
    return message


def _rebuildable(err: BaseException) -> bool:
    return type(err) in (ValueError, TypeError, KeyError, FileNotFoundError)


def instantiate_all(nodes: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` child of a group node (callbacks, loggers); null entries are skipped."""
    if not nodes:
        return []
    return [instantiate(node) for node in nodes.values() if isinstance(node, DictConfig) and "_target_" in node]
