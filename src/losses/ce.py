"""Standard SFT cross-entropy (maximum likelihood), the baseline every objective is compared with, in every form.

``ce_loss`` on the logits; ``chunked_ce_loss`` from the hidden states and the LM head a chunk at a time
(``chunked.py``'s engine); ``fused_ce_loss`` through a fused CE kernel (``fused_ce.py``). :data:`CE` lists them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.losses.chunked import fused_linear_loss, normaliser
from src.losses.forms import LossForms
from src.losses.fused_ce import fused_token_nll
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


def _ce_chunk(z: torch.Tensor, y: torch.Tensor, _: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_t (lse_t - z_{t,y})`` and ``softmax(z) - onehot(y)``, computed in place in ``z``."""
    z_y = z.gather(-1, y.unsqueeze(-1))  # (c, 1)
    lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (c, 1)
    loss = (lse - z_y).sum()
    p = z.sub_(lse).exp_()  # (c, V) softmax, z is not needed any more
    p.scatter_add_(-1, y.unsqueeze(-1), -torch.ones_like(z_y))
    return loss, p


def chunked_ce_loss(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
    chunk_size: int = 1024, num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """:func:`ce_loss` on ``h W^T + b`` (``h [N, D]``, ``targets [N]`` from ``kept_hidden``): ``-sum_t log p(y_t) / N``
    (or ``/ num_items_in_batch``), a chunk of ``chunk_size`` tokens at a time."""
    return fused_linear_loss(h, weight, bias, targets, chunk_size, _ce_chunk, num_items_in_batch)


def fused_ce_loss(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
    impl: str = "cce", num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """:func:`ce_loss` on ``h W^T + b`` through the fused CE kernel ``impl`` (``cce`` or ``liger``)."""
    return fused_token_nll(h, weight, targets, bias, impl, "sum") * normaliser(h.size(0), num_items_in_batch)


# h [N, D] of the kept positions: the CE of every form is a token sum over one normaliser.
CE = LossForms("ce", plain=ce_loss, chunked=chunked_ce_loss, fused=fused_ce_loss)
