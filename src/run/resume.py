"""``ckpt_path=auto``: continue a run from its own newest checkpoint, or start it fresh when it has none."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from: ``ckpt_path`` itself, or for ``auto`` ``<run dir>/checkpoints/last.ckpt`` if it
    exists (a requeued job, re-run with the same ``hydra.run.dir``), else none."""
    path = cfg.get("ckpt_path")
    if path != "auto":
        return path
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if last.exists():  # a file, or a directory of shards (trainer=fsdp2 with save_distributed_checkpoint)
        log.info("ckpt_path=auto: resuming from %s", last)
        return str(last)
    log.info("ckpt_path=auto: no checkpoint in %s yet, starting fresh", last.parent)
    return None
