"""Standard SFT: maximum likelihood on the response tokens."""

from __future__ import annotations

import torch

from src.losses.ce import ce_loss
from src.modules.base import Metrics, PostTrainModule


class CEModule(PostTrainModule):
    loss_is_ce = True

    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        loss = ce_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        return loss, {}
