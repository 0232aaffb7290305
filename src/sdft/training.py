"""``train.py experiment=sdft_*``: distil the training file with the run's own backbone, then train on the result.

The seed model is the backbone exactly as training starts from it (``cfg.model``, before any step). The stage is
cached (``src.sdft.cache``), so a second run, a sweep over training settings or a resumed run reuses the distilled
file in seconds. Several training processes each run the stage (identical, atomic shard writes); distil once with
``distill.py`` first to spare the duplicated generation.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig

from src.modules.checkpoints import backbone_from_config
from src.utils.instantiate import instantiate

log = logging.getLogger(__name__)


def distill_for_training(cfg: DictConfig) -> str:
    """Run the stage on ``cfg.distill.path``; returns the distilled file for ``data.path``."""
    stage = instantiate(cfg.distill)
    seed_model, tokenizer = backbone_from_config(cfg)
    if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto"):
        seed_model.to("cuda")
    target = stage(model=seed_model, tokenizer=tokenizer)
    del seed_model
    out = Path(cfg.paths.output_dir) / "distill"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(target.with_name(target.stem + ".summary.json"), out / "summary.json")
    log.info("SDFT: training on the distilled %s (summary in %s)", target, out / "summary.json")
    if cfg.distill.fallback == "original" and "val_from" in cfg.data:  # row for row the input: validate on its golds
        cfg.data.val_from = cfg.distill.path
    return str(target)
