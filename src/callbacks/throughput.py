"""Tokens per second of training, measured between consecutive batch ends (data loading included)."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class TokensPerSecond(Callback):
    """Logs ``train/tokens_per_sec`` and ``train/tokens_seen``: non-pad input tokens, summed over all ranks."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.seen = 0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.last is None:
            self.last = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        local = sum(v.sum() for k, v in batch.items() if k.endswith("attention_mask"))
        tokens = int(trainer.strategy.reduce(torch.as_tensor(local, dtype=torch.float64), reduce_op="sum"))
        now = time.perf_counter()
        self.seen += tokens
        pl_module.log("train/tokens_per_sec", tokens / max(now - self.last, 1e-9), on_step=True, on_epoch=False)
        pl_module.log("train/tokens_seen", float(self.seen), on_step=True, on_epoch=False)
        self.last = now

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seen = state_dict["seen"]
