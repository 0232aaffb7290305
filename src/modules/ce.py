"""Standard SFT: maximum likelihood on the response tokens."""

from __future__ import annotations

import torch

from src.losses.ce import ce_loss
from src.losses.chunked import chunked_ce_loss
from src.losses.fused_ce import fused_ce_loss
from src.modules.base import LOSS_IMPLS, HeadInputs, Metrics, PostTrainModule


class CEModule(PostTrainModule):
    loss_is_ce = True
    loss_impls = LOSS_IMPLS  # the fused CE kernels too (cce, liger)

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
    """:func:`ce_loss` from hidden states and the head, chunked or through the fused kernel ``inputs.impl`` (shared by
    the CE warm start of ConvexModule and InterleaveModule's SFT)."""
    h, targets = inputs.kept()
    if inputs.impl != "chunked":  # cce | liger
        return fused_ce_loss(h, inputs.weight, targets, inputs.bias, inputs.impl, num_items_in_batch)
    return chunked_ce_loss(h, inputs.weight, targets, inputs.bias, inputs.chunk_size, num_items_in_batch)
