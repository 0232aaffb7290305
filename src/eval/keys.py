"""Where each task's settings are in the composed config, so an error raised while it runs names the key to set.

A task's own checks name ``eval.<key>`` and its DataModule's name ``data.<key>``: right for ``python eval.py
eval=gsm8k`` and for ``train.py``, but in a suite the task is at ``eval.tasks.<name>`` and ``eval=ppl``'s DataModule
at ``eval.data`` (``data@eval.data``). Errors at instantiation are renamed by ``src.utils.instantiate`` (Hydra knows
the failing node); these are the ones raised later, while the task runs (e.g. ``data.val_size`` above a file's rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig

from src.utils.checks import rekey


def task_nodes(eval_cfg: DictConfig | None) -> dict[str, tuple[str, DictConfig]]:
    """``{task name: (its key, its config node)}`` of an ``eval`` node: one task, or a suite's ``tasks``."""
    if not eval_cfg:
        return {}
    if "_target_" in eval_cfg:
        return {eval_cfg.get("name"): ("eval", eval_cfg)}
    tasks = eval_cfg.get("tasks") or {}
    return {node.get("name", key): (f"eval.tasks.{key}", node) for key, node in tasks.items()
            if isinstance(node, DictConfig)}


@contextmanager
def named_at(at: str, node: DictConfig) -> Iterator[None]:
    """Re-raise a ValueError from inside with the keys of the task ``node`` (and of its ``data``) named from ``at``."""
    try:
        yield
    except ValueError as err:
        message = rekey(str(err), "eval", at, node.keys())
        if isinstance(node.get("data"), DictConfig):
            message = rekey(message, "data", f"{at}.data", node.data.keys())
        if message == str(err):
            raise
        raise ValueError(message) from err
