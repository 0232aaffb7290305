"""Write a Hugging Face directory (model + tokenizer) that ``from_pretrained`` loads, at the end of training."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.modules.sharding import gather_backbone

log = logging.getLogger(__name__)


def export_hf(model: torch.nn.Module, tokenizer: Any, out_dir: str | Path, merge_lora: bool = True) -> Path:
    """Save ``model`` and ``tokenizer`` in Hugging Face format. A peft model is saved merged (a plain checkpoint
    every tool can load) unless ``merge_lora=False``, which writes the adapter alone."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if merge_lora and hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()  # a copy: the trained module keeps its adapters
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


class HFExport(Callback):
    """Exports at the end of training; ``exported`` is the directory written (None until then, and on other ranks)."""

    def __init__(self, dirpath: str, merge_lora: bool = True):
        self.dirpath, self.merge_lora = dirpath, merge_lora
        self.exported: Path | None = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:  # a wiring check: one step of weights is not a model anyone should load
            if trainer.is_global_zero:
                log.info("fast_dev_run: skipping the Hugging Face export to %s", self.dirpath)
            return
        model = pl_module.model
        if pl_module.device_mesh is not None:  # FSDP2: every rank gathers its shards, rank 0 gets the whole model
            model = gather_backbone(model, pl_module.model_factory, trainer.global_rank)
        if not trainer.is_global_zero:
            return
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        self.exported = export_hf(model, tokenizer, self.dirpath, self.merge_lora)
        log.info("exported Hugging Face model and tokenizer to %s", self.exported)
