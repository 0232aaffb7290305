"""GEM: entropic distribution matching for SFT (Li et al., ICLR 2025, arXiv 2408.16673)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from src.losses.gem import GEM, GEM_H
from src.losses.head_outputs import HeadOutput
from src.modules.base import Metrics, PostTrainModule
from src.utils.checks import require, require_choice


class GEMModule(PostTrainModule):
    """GEM on the response tokens, normalised over the global batch (``liziniu/GEM`` ``sft_trainer_v2.py``).

    ``beta`` near 1 behaves like CE, near 0 keeps more diversity; ``h="logsigmoid"`` is what every official script
    runs (about half the linear gradient for small logit gaps). The logged ``loss`` is GEM's surrogate value, which
    can be negative; the base logs the true ``ce`` and ``entropy`` beside it.
    """

    losses = (GEM,)

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
        beta: float = 0.7,
        h: str = "linear",
        logsigmoid_scale: float = 0.01,
    ):
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        require(beta > 0, "module.beta", beta, "> 0 (beta -> 1 is CE-like, small beta keeps diversity)")
        require_choice("module.h", h, GEM_H)
        require(logsigmoid_scale > 0, "module.logsigmoid_scale", logsigmoid_scale, "> 0")
        self.beta, self.h, self.logsigmoid_scale = beta, h, logsigmoid_scale

    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        loss = out.loss(GEM, beta=self.beta, h=self.h, logsigmoid_scale=self.logsigmoid_scale,
                        num_items_in_batch=num_items_in_batch)
        return loss, {}
