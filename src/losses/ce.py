"""Standard SFT cross-entropy (maximum likelihood), the baseline every objective is compared with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.losses.logprobs import IGNORE_INDEX, shift_labels
from src.losses.reduction import token_reduce


def ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Token-mean next-token cross-entropy, ``-1/N sum_t log p(y_t)`` over the N kept tokens of the batch.

    ``logits [B, T, V]``, ``labels [B, T]`` unshifted with ``ignore_index``. ``num_items_in_batch`` replaces N by
    the label-token count of the whole accumulated (and data-parallel) batch, as in Hugging Face's
    ``num_items_in_batch``, so gradient accumulation does not change the result.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    targets = shift_labels(labels, ignore_index).reshape(-1)  # (B*T,), the last position of each row ignored
    flat = logits.reshape(-1, logits.size(-1))  # (B*T, V), a view: the labels were shifted, not the logits
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # logsumexp over a large vocabulary in half precision loses digits
    nll = F.cross_entropy(flat, targets, ignore_index=ignore_index, reduction="none")  # (B*T,), 0 where ignored
    return token_reduce(nll, targets != ignore_index, num_items_in_batch)
