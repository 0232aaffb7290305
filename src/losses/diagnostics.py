"""What the objectives log beside their loss, in the forms of ``forms.py``: the true CE, the predictive entropy, and
the mean raw logit (TRL's ``logits/chosen``), from the logits or from the hidden states and the LM head.

All are without gradient and computed only on the steps that are written out.
"""

from __future__ import annotations

import torch

from src.losses.chunked import acc_dtype, chunk_logits
from src.losses.logprobs import IGNORE_INDEX, shift_labels


@torch.no_grad()
def predictive_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distribution over positions with a kept label."""
    mask = shift_labels(labels) != IGNORE_INDEX  # (B, T)
    logp = torch.log_softmax(logits[mask].float(), dim=-1)  # (N, V)
    if logp.shape[0] == 0:
        return logits.new_zeros((), dtype=torch.float32)
    return -(logp.exp() * logp).sum(-1).mean()


@torch.no_grad()
def chunked_ce_and_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The base's diagnostics without ``[N, V]``: token-mean CE and predictive entropy over the kept tokens."""
    nll = torch.zeros((), dtype=acc_dtype(h), device=h.device)
    ent = torch.zeros_like(nll)
    for start in range(0, h.size(0), chunk_size):
        z = chunk_logits(h[start:start + chunk_size], weight, bias)  # (c, V)
        logp = torch.log_softmax(z, dim=-1)
        nll -= logp.gather(-1, targets[start:start + chunk_size].unsqueeze(-1)).sum()
        ent -= (logp.exp() * logp).sum()
    n = max(h.size(0), 1)
    return nll / n, ent / n


@torch.no_grad()
def mean_logit(logits: torch.Tensor) -> torch.Tensor:
    """``logits [B, T, V] -> [B, T-1]``: each shifted position's logit averaged over the vocabulary."""
    return logits[:, :-1].detach().float().mean(-1)


@torch.no_grad()
def mean_logit_from_hidden(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`mean_logit` as ``mean_v z_v = h . mean_v W_v + mean_v b_v`` at every shifted position, ``[B, T-1]``:
    exact, with no ``[.., V]`` tensor."""
    per_position = hidden[:, :-1].float() @ weight.float().mean(0)  # (B, T-1)
    return per_position if bias is None else per_position + bias.float().mean()
