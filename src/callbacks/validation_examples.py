"""Each validation batch's own values, one JSON line per batch: the units of a paired bootstrap over held-out data.

A validation metric is a mean over the whole held-out set; an interval on a difference between two runs needs the
values the mean is made of. With ``data.eval_batch_size=1`` (``data.sft.eval_batch_size`` and
``data.prefs.eval_batch_size`` under interleave) a batch is one example, and the lines are per example. Validation
data is not shuffled, so batch ``i`` of one run is batch ``i`` of another run on the same data: the lines of two runs
pair up by ``(dataloader, batch)``.

Each line: ``step`` (optimizer steps done), ``dataloader``, ``batch``, ``weight`` (the batch's weight in the logged
mean: label tokens for a token-weighted loss, examples otherwise) and every value the module's ``validation_step``
returned for that batch (``val/ce``, ``val/sft_loss``, ``val/dpo_loss``, ...). The weighted mean of a key over one
step's lines is the logged value of that step (tested). Written to ``path`` after every validation (not the sanity
check); with several processes, each writes its own ``<path>.rank<r>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ValidationExamples(Callback):
    def __init__(self, path: str = "val_examples.jsonl"):
        self.path = path
        self.lines: list[dict[str, Any]] = []

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict):
            return
        values = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in outputs.items()}
        self.lines.append({"step": trainer.global_step, "dataloader": dataloader_idx, "batch": batch_idx, **values})

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.lines:
            return
        path = Path(self.path if trainer.world_size == 1 else f"{self.path}.rank{trainer.global_rank}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.writelines(json.dumps(line) + "\n" for line in self.lines)
        self.lines = []
