"""Refuse (or warn about) training half-precision weights that have no fp32 master copy, once the model is built."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.utils.preflight import refuse_half_precision


class HalfPrecisionGuard(Callback):
    """The run-time half of ``src.utils.preflight.check_half_precision``: ``model.dtype=auto`` can load a bf16
    checkpoint, which only the built model reveals. Trainable bf16/fp16 parameters stop the run before its first
    step unless ``allow`` (the top-level ``pure_half_precision``)."""

    def __init__(self, allow: bool = False):
        self.allow = allow

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainable = {p.dtype for p in pl_module.parameters() if p.requires_grad}
        half = trainable & {torch.bfloat16, torch.float16}
        if half:
            refuse_half_precision(f"the trainable weights are {sorted(str(d) for d in half)}", self.allow)
