"""Standard SFT: maximum likelihood on the response tokens."""

from __future__ import annotations

import torch

from src.losses.ce import CE
from src.losses.head_outputs import HeadOutput
from src.modules.base import Metrics, PostTrainModule


class CEModule(PostTrainModule):
    losses = (CE,)  # every head path, the fused CE kernels (cce, liger) too
    loss_is_ce = True

    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        return out.loss(CE, num_items_in_batch=num_items_in_batch), {}
