"""Thin wrappers over ``hydra.utils.instantiate`` with errors that name the config node."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as err:
        # Hydra wraps the real cause (e.g. an out-of-range value) in a long chain: surface it first.
        cause = err.__cause__ or err
        if not _rebuildable(cause):
            raise err
        raise type(cause)(f"{cause}\n(while instantiating {node.get('_target_')})") from err


def _rebuildable(err: BaseException) -> bool:
    return type(err) in (ValueError, TypeError, KeyError, FileNotFoundError)


def instantiate_all(nodes: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` child of a group node (callbacks, loggers); null entries are skipped."""
    if not nodes:
        return []
    return [instantiate(node) for node in nodes.values() if isinstance(node, DictConfig) and "_target_" in node]


def backbone_from_config(cfg: DictConfig) -> tuple[Any, Any]:
    """``(model, tokenizer)`` as a ``train.py`` run with ``cfg`` starts: the DataModule's tokenizer (an interleaving
    DataModule's SFT stream's), and the backbone that ``cfg.model`` (a partial) builds with it."""
    from src.datamodules.tokenizer import load_tokenizer

    data = cfg.data.sft if "sft" in cfg.data else cfg.data
    tokenizer = load_tokenizer(data.get("tokenizer", "toy"), data.get("chat_template"))
    return instantiate(cfg.model)(tokenizer=tokenizer), tokenizer
