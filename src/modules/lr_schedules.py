"""Learning-rate schedules with warmup, bound to the run length Lightning computes."""

from __future__ import annotations

import torch
from transformers import get_scheduler

from src.utils.checks import require, require_choice

NAMES = ("cosine", "linear", "constant", "constant_with_warmup")


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    name: str = "cosine",
    warmup_ratio: float = 0.0,
    warmup_steps: int | None = None,
) -> torch.optim.lr_scheduler.LRScheduler:
    """Hugging Face's schedules; ``warmup_steps`` wins over ``warmup_ratio`` (a fraction of optimizer steps)."""
    require_choice("module.scheduler.name", name, NAMES)
    require(0.0 <= warmup_ratio < 1.0, "module.scheduler.warmup_ratio", warmup_ratio, "0 <= ratio < 1")
    warmup = warmup_steps if warmup_steps is not None else int(round(warmup_ratio * num_training_steps))
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)
