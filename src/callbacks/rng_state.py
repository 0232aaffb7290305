"""The global random state in every checkpoint, so a resumed run draws the dropout masks the uninterrupted run drew."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class RNGState(Callback):
    """Saves the global RNGs (torch on the CPU and on the current CUDA device, Python's ``random``, NumPy) with each
    checkpoint and puts them back just before the first training batch of a run resumed from it.

    Lightning restores the weights, the optimizer, the loops and (here) the data positions, but not the global random
    state, which dropout draws from; a resumed run would otherwise restart it from ``seed`` plus whatever its start-up
    drew. Restoring at the first batch rather than at load lets the start-up draw freely (each DataLoader iterator
    draws a seed), so what matters is that nothing draws between a checkpoint and the next batch of the uninterrupted
    run: the training loader and the other loaders created mid-run draw from their own generators for that reason.
    Every rank starts from the same seed and draws alike, so rank 0's state (the one a checkpoint holds) is every
    rank's.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, *rest = np.random.get_state()  # its keys as a tensor: checkpoints load with weights_only=True
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), *rest)}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()  # the current device's: a resumed job may see other devices
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = state_dict

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.pending is None:
            return
        state, self.pending = self.pending, None
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
