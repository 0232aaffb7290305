"""Token-level reductions shared by the SFT losses."""

from __future__ import annotations

import torch


def token_reduce(
    per_token: torch.Tensor, mask: torch.Tensor, num_items_in_batch: torch.Tensor | float | None = None
) -> torch.Tensor:
    """``sum(per_token * mask) / N``.

    N is the number of kept tokens in this micro-batch, or ``num_items_in_batch`` when given (the global-batch
    normalisation of the Hugging Face >= 4.46 trainers). An empty micro-batch returns 0 with a graph, not NaN.
    """
    total = (per_token * mask).sum()
    if num_items_in_batch is None:
        return total / mask.sum().clamp(min=1)
    return total / num_items_in_batch
