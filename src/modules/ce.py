"""Standard SFT: maximum likelihood on the response tokens."""

from __future__ import annotations

import torch

from src.losses.ce import ce_loss
from src.losses.chunked import chunked_ce_loss
from src.modules.base import HeadInputs, Metrics, PostTrainModule


class CEModule(PostTrainModule):
    loss_is_ce = True

    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        loss = ce_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        return loss, {}

    def chunked_objective(
        self, inputs: HeadInputs, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        return chunked_ce(inputs, num_items_in_batch), {}


def chunked_ce(inputs: HeadInputs, num_items_in_batch: torch.Tensor | None) -> torch.Tensor:
    """:func:`ce_loss` on the chunked path (shared by the CE warm start of ConvexModule and InterleaveModule's SFT)."""
    h, targets = inputs.kept()
    return chunked_ce_loss(h, inputs.weight, targets, inputs.bias, inputs.chunk_size, num_items_in_batch)
