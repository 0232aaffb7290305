"""Convex learning (Shao, Ma, Zhang, Feng, NeurIPS 2023, "Beyond MLE: Convex Learning for Text Generation").

``convex_loss`` on the logits; ``chunked_convex_loss`` from the hidden states and the LM head (two passes over the
chunks, ``sequence_logps.py``). :data:`CONVEX` lists them.
"""

from __future__ import annotations

import torch

from src.losses.forms import LossForms
from src.losses.logprobs import IGNORE_INDEX, num_label_tokens, shift, token_logps
from src.losses.reduction import token_reduce
from src.losses.sequence_logps import sequence_sums

CONVEX_REDUCTIONS = ("token", "sentence")


def convex_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    order: float = 1.0,
    label_smoothing: float = 0.0,
    reduction: str = "token",
    ignore_index: int = IGNORE_INDEX,
    *,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Convex-composition loss ``-exp(k * l_b) = -p(y_b)^(k / L_b)`` per sequence.

    ``logits [B, T, V]``, ``labels [B, T]`` unshifted. ``l_b = (sum_t log p_bt) / L_b`` is the length-normalised
    log-likelihood of row ``b`` over its ``L_b`` kept tokens; ``k = order`` is the convex order and ``eps`` the
    label smoothing. The outer ``exp(k x)`` is convex and increasing, so sequences the model already finds likely get
    more weight: at a kept position the gradient is ``-(k p~_b^k / N)(onehot(y) - p)`` with ``p~_b = exp(l_b)``.

    ``reduction="token"`` (the LLM form; ``ictnlp/Convex-Learning`` ``LLM/train/run_convex.py`` when ``k=1, eps=0``,
    and the fairseq ``label_smoothed_cross_entropy_convex`` criterion otherwise)::

        loss = [ (1 - eps) * -sum_b L_b exp(k l_b)  +  (eps / V) * -sum_b sg(k exp(k l_b)) sum_t sum_v log p_btv ] / N

    i.e. each kept token contributes ``-(1-eps) exp(k l_b)`` plus its smoothing term. ``N`` is the kept-token count
    of the micro-batch (official) or ``num_items_in_batch`` (global-batch normalisation).

    ``reduction="sentence"`` (the vanilla NAT form, ``models/nat_convex.py``)::

        loss = mean_b [ -(1 - eps) exp(k l_b) + eps * sg(k exp(k l_b)) * mean_t mean_v (-log p_btv) ]

    with ``mean_t`` over all ``T-1`` positions, ignored ones counted as 0, as the official code does. It averages over
    sequences, so ``num_items_in_batch`` (a token count) is refused there.

    A row with no kept token contributes 0 and is left out of the sentence mean; the official LLM code returns NaN
    for it (0/0 in ``l_b``). Log-probs are computed in fp32 for half-precision logits.
    """
    check_convex_args(order, label_smoothing, reduction, num_items_in_batch)
    logps, mask = token_logps(logits, labels, ignore_index)  # (B, T-1), 0 where ignored
    lengths = mask.sum(-1)  # (B,) L_b
    seq_prob = torch.exp(order * logps.sum(-1) / lengths.clamp(min=1))  # (B,) exp(k l_b); 1 on an empty row
    weight = (order * seq_prob).detach()  # (B,) the smoothing term's per-sequence factor
    vocab = logits.size(-1)
    if reduction == "token":
        per_token = -(1 - label_smoothing) * seq_prob.unsqueeze(-1).expand_as(logps)  # (B, T-1)
        if label_smoothing > 0:
            per_token = per_token - (label_smoothing / vocab) * weight.unsqueeze(-1) * _vocab_logp_sum(logits, labels)
        return token_reduce(per_token, mask, num_items_in_batch)
    per_seq = -(1 - label_smoothing) * seq_prob  # (B,)
    if label_smoothing > 0:
        mean_neg_logp = -(_vocab_logp_sum(logits, labels) * mask).sum(-1) / (vocab * mask.size(-1))  # (B,)
        per_seq = per_seq + label_smoothing * weight * mean_neg_logp
    nonempty = lengths > 0
    return (per_seq * nonempty).sum() / nonempty.sum().clamp(min=1)


def check_convex_args(order: float, label_smoothing: float, reduction: str, num_items_in_batch: object) -> None:
    """The convex loss's argument checks, shared by the plain and the chunked path."""
    if not order > 0:
        raise ValueError(f"order must be > 0, got {order}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if reduction not in CONVEX_REDUCTIONS:
        raise ValueError(f"reduction must be one of {CONVEX_REDUCTIONS}, got {reduction!r}")
    if reduction == "sentence" and num_items_in_batch is not None:
        raise ValueError("num_items_in_batch counts tokens; reduction='sentence' averages over sequences")


def _vocab_logp_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``sum_v log p_v`` at every shifted position, ``[B, T-1]``, as ``sum_v z_v - V lse(z)`` (no log-softmax copy)."""
    z, _ = shift(logits, labels)  # (B, T-1, V)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    return z.sum(-1) - z.size(-1) * torch.logsumexp(z, dim=-1)


def chunked_convex_loss(
    hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
    order: float = 1.0, label_smoothing: float = 0.0, reduction: str = "token", ignore_index: int = IGNORE_INDEX,
    *, chunk_size: int = 1024, num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """:func:`src.losses.convex.convex_loss` on ``hidden W^T + b``, the same formula written on per-sequence sums.

    Each row's exponent ``exp(k l_b)`` needs the whole row's mean log-prob, a global quantity for a chunk; it comes
    from the no-grad first pass of :func:`sequence_sums`, and its gradient reaches the tokens in the recomputing second
    pass (module docstring). With ``S_b = sum_t log p_bt`` and ``U_b = sum_t sum_v log p_btv`` over kept tokens:
    token: ``-[(1-eps) sum_b L_b exp(k S_b / L_b) + (eps / V) sum_b sg(k exp(k l_b)) U_b] / N``;
    sentence: ``mean_b [-(1-eps) exp(k l_b) - eps sg(k exp(k l_b)) U_b / (V (T-1))]`` over non-empty rows.
    """
    check_convex_args(order, label_smoothing, reduction, num_items_in_batch)
    seq_logp, seq_vocab_logp = sequence_sums(hidden, labels, weight, bias, chunk_size, ignore_index)  # (B,) each
    lengths = num_label_tokens(labels, ignore_index, per_row=True)  # (B,) L_b
    seq_prob = torch.exp(order * seq_logp / lengths.clamp(min=1))  # (B,) exp(k l_b); 1 on an empty row
    seq_weight = (order * seq_prob).detach()
    vocab = weight.size(0)
    if reduction == "token":
        total = -(1 - label_smoothing) * (lengths * seq_prob).sum()
        if label_smoothing > 0:
            total = total - (label_smoothing / vocab) * (seq_weight * seq_vocab_logp).sum()
        denominator = lengths.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return total / denominator
    per_seq = -(1 - label_smoothing) * seq_prob  # (B,)
    if label_smoothing > 0:
        per_seq = per_seq - label_smoothing * seq_weight * seq_vocab_logp / (vocab * (labels.size(1) - 1))
    nonempty = lengths > 0
    return (per_seq * nonempty).sum() / nonempty.sum().clamp(min=1)


# The chunked form takes whole rows: exp(k l_b) needs each row's mean log-prob (sequence_logps.py's engine).
CONVEX = LossForms("convex", plain=convex_loss, chunked=chunked_convex_loss, rows=True)
