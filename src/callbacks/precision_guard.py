"""Refuse (or warn about) training half-precision weights that have no fp32 master copy, once the model is built."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)

class HalfPrecisionGuard(Callback):
    """The run-time half of ``src.run.preflight.check_half_precision``: ``model.dtype=auto`` can load a bf16
    checkpoint, which only the built model reveals. Trainable bf16/fp16 parameters stop the run before its first
    step unless ``allow`` (the top-level ``pure_half_precision``)."""

    def __init__(self, allow: bool = False):
        self.allow = allow

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainable = {p.dtype for p in pl_module.parameters() if p.requires_grad}
        half = trainable & {torch.bfloat16, torch.float16}
        if half:
            refuse_half_precision(f"the trainable weights are {sorted(str(d) for d in half)}", self.allow)


def refuse_half_precision(what: str, allow: bool) -> None:
    """Raise for half-precision trainable weights without an fp32 master copy, or only warn when ``allow``
    (``pure_half_precision=true``); shared by this config check and the run-time ``HalfPrecisionGuard``."""
    message = (f"{what} without an fp32 master copy: updates smaller than the weights' resolution are lost (most "
               "of them at lr 2e-5 in bf16)")
    if allow:
        log.warning("%s; running anyway because pure_half_precision=true", message)
        return
    raise ValueError(f"{message}. Use model.dtype=float32 with trainer.precision=bf16-mixed (fp32 master weights), "
                     "LoRA (model.lora=...), or set pure_half_precision=true to accept it")
