"""A resume continues the run its checkpoint came from: same model, objective, data and seed, or a one-line refusal.

Hydra writes ``<run dir>/.hydra/config.yaml`` for the new job before ``train.py`` runs, so the previous run's config
cannot be read there. Each checkpoint therefore carries the part of the config that defines the run
(``checkpoint["run_config"]``, saved by ``src.callbacks.run_config.SaveRunConfig``), and a resume compares it with the
new one before building anything: a different backbone would otherwise fail later with pages of ``size mismatch for
model...``, and a different objective, data or seed would train on silently as if it were the same run.

A refused job leaves the run as it was: Hydra has already replaced ``.hydra/{config,hydra,overrides}.yaml`` with the
refused job's by then, so every accepted job keeps a copy in ``.hydra/accepted/`` and a refusal puts it back.

Compared: ``model``, ``module`` (its class, hyperparameters, optimizer and schedule), ``data``, ``distill`` and
``seed``. Not compared: everything else (``trainer`` with ``max_steps``, precision and devices, ``logger``,
``callbacks``, ``paths``, ``eval``, names and tags), nor the settings in ``HARMLESS`` that change speed or memory,
not the numbers. ``resume_config_check=false`` resumes anyway.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.callbacks.run_config import KEY

log = logging.getLogger(__name__)

COMPARED = ("model", "module", "data", "distill", "seed")
# Leaf names (at any depth of the compared nodes) that change how fast or in how much memory, not what is trained:
# the head path (plain, chunked and fused give the same numbers), attention kernels, loader workers, evaluation
# batch sizes and caches.
HARMLESS = frozenset({"loss_impl", "loss_chunk_size", "attn_implementation", "gradient_checkpointing", "foreach",
                      "fused", "capturable", "num_workers", "eval_batch_size", "reference_cache_dir"})
ABSENT = "(absent)"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The compared part of ``cfg``, resolved to plain values (what checkpoints save)."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
            for key in COMPARED if key in cfg}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.hidden_size": 96, ...}``; a list is one value."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def differences(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, current value)}`` for the compared keys that differ, harmless ones left out."""
    old, new = flatten(saved), flatten(current)
    found = {}
    for key in sorted(old.keys() | new.keys()):
        if key.rsplit(".", 1)[-1] in HARMLESS:
            continue
        before, after = old.get(key, ABSENT), new.get(key, ABSENT)
        if before != after:
            found[key] = (before, after)
    return found


def saved_run_config(ckpt_path: str | os.PathLike) -> dict[str, Any] | None:
    """The run config a checkpoint holds (``None`` for one written before checkpoints kept it); memory-mapped."""
    path = Path(ckpt_path)
    if path.is_dir():  # a sharded (FSDP) checkpoint keeps everything but the tensors in meta.pt
        path = path / "meta.pt"
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return torch.load(path, map_location="cpu", mmap=True, weights_only=False).get(KEY)


def check_resume_config(cfg: DictConfig, current: dict[str, Any]) -> None:
    """Refuse to resume ``cfg.ckpt_path`` when its run config differs from ``current`` in a compared key (unless
    ``resume_config_check=false``); an accepted job's Hydra files are kept."""
    ckpt, hydra_dir = cfg.get("ckpt_path"), Path(cfg.paths.output_dir) / ".hydra"
    if ckpt and cfg.get("resume_config_check", True):
        refuse_another_run(ckpt, current, hydra_dir)
    keep(hydra_dir)


def refuse_another_run(ckpt: str, current: dict[str, Any], hydra_dir: Path) -> None:
    saved = saved_run_config(ckpt)
    if saved is None:
        log.warning("%s holds no run config (written by an older version): not compared with this run's", ckpt)
        return
    if found := differences(saved, current):
        put_back(hydra_dir)
        changes = ", ".join(f"{key}: {_short(old)} -> {_short(new)}" for key, (old, new) in found.items())
        raise ValueError(f"ckpt_path={ckpt} was trained with another model, objective, data or seed ({changes}); "
                         "set resume_config_check=false to resume it anyway")


def keep(hydra_dir: Path) -> None:
    """Copy the accepted job's Hydra files to ``.hydra/accepted/`` (nothing outside a Hydra job: no files)."""
    for name in HYDRA_FILES:
        if (hydra_dir / name).is_file():
            (hydra_dir / "accepted").mkdir(exist_ok=True)
            shutil.copy2(hydra_dir / name, hydra_dir / "accepted" / name)


def put_back(hydra_dir: Path) -> None:
    """Undo Hydra's overwrite of the run's files by a job that is refused."""
    for name in HYDRA_FILES:
        if (hydra_dir / "accepted" / name).is_file():
            shutil.copy2(hydra_dir / "accepted" / name, hydra_dir / name)


def _short(value: Any, limit: int = 60) -> str:
    text = value if value == ABSENT else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
