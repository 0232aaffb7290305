"""Per-sequence log-prob sums in every form: DPO's policy and reference log-probs, and the convex loss's engine.

``sequence_logps`` (``logprobs.py``) on the logits; :func:`chunked_sequence_logps` from the hidden states and the LM
head, chunked; :func:`fused_sequence_logps` through a fused CE kernel. :data:`SEQUENCE_LOGPS` lists them.

Chunked per-sequence sums from hidden states and the LM head.

Unlike CE and GEM (``chunked.py``), these losses are not a token sum with a fixed normaliser: DPO applies a sigmoid
to a difference of per-sequence sums, the convex loss ``exp(k * mean_t log p)`` per sequence. So the chunked function
stops at the per-sequence sums ``[B]`` and lets ordinary autograd apply the rest. That is two passes over the chunks:

1. forward, without grad: per chunk ``z = h W^T + b``, each token's ``log p(y_t)`` (and ``sum_v log p_v`` for label
   smoothing), summed into its row; the chunk is freed.
2. backward, given ``g = dL/d(sums) [B]`` (which holds the sequence-level weights, e.g. ``sigmoid(-margin)`` of DPO or
   ``k exp(k l_b) / L_b`` of the convex loss): recompute each chunk's softmax and accumulate
   ``dz = g_b (onehot(y) - p) + g'_b (1 - V p)`` into ``dL/dh`` and ``dL/dW`` as ``chunked.py`` does.

The recompute costs one more head matmul per chunk; peak extra memory stays ``O(chunk V)``.
"""

from __future__ import annotations

import torch

from src.losses.chunked import chunk_logits, fused_linear_grads, kept_hidden
from src.losses.forms import LossForms
from src.losses.fused_ce import fused_token_nll
from src.losses.logprobs import IGNORE_INDEX, num_label_tokens, sequence_logps


class _SequenceSums(torch.autograd.Function):
    """``(sum_t log p(y_t) [B], sum_t sum_v log p_v [B])`` over each row's kept tokens; backward recomputes chunks."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, rows, num_rows, chunk_size):
        acc = torch.promote_types(h.dtype, torch.float32)
        logp = torch.empty(h.size(0), dtype=acc, device=h.device)  # (N,)
        vocab_logp = torch.empty_like(logp)  # (N,)
        for start in range(0, h.size(0), chunk_size):
            s = slice(start, start + chunk_size)
            z = chunk_logits(h[s], weight, bias)  # (c, V)
            lse = torch.logsumexp(z, dim=-1)  # (c,)
            logp[s] = z.gather(-1, targets[s].unsqueeze(-1)).squeeze(-1) - lse
            vocab_logp[s] = z.sum(-1) - z.size(-1) * lse
        sums = logp.new_zeros(num_rows).index_add_(0, rows, logp)
        vocab_sums = logp.new_zeros(num_rows).index_add_(0, rows, vocab_logp)
        ctx.save_for_backward(h, weight, bias, targets, rows)
        ctx.chunk_size = chunk_size
        ctx.set_materialize_grads(False)
        return sums, vocab_sums

    @staticmethod
    def backward(ctx, grad_sums, grad_vocab_sums):
        h, weight, bias, targets, rows = ctx.saved_tensors
        g1 = None if grad_sums is None else grad_sums[rows]  # (N,) each token's weight from its sequence
        g2 = None if grad_vocab_sums is None else grad_vocab_sums[rows]

        def chunk(z: torch.Tensor, y: torch.Tensor, s: slice) -> tuple[torch.Tensor, torch.Tensor]:
            p = torch.softmax(z, dim=-1)  # (c, V)
            coef = torch.zeros(p.size(0), dtype=p.dtype, device=p.device)  # (c,) the factor of -p
            if g1 is not None:
                coef += g1[s]
            if g2 is not None:
                coef += z.size(-1) * g2[s]
            dz = p.mul_(-coef.unsqueeze(-1))
            if g1 is not None:
                dz.scatter_add_(-1, y.unsqueeze(-1), g1[s].to(dz.dtype).unsqueeze(-1))
            if g2 is not None:
                dz += g2[s].to(dz.dtype).unsqueeze(-1)
            return dz.new_zeros(()), dz

        _, grad_h, grad_w, grad_b = fused_linear_grads(h, weight, bias, targets, ctx.chunk_size, chunk, 1.0)
        need = ctx.needs_input_grad
        return (grad_h if need[0] else None, grad_w if need[1] else None, grad_b if need[2] else None,
                None, None, None, None)


def sequence_sums(
    hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
    chunk_size: int = 1024, ignore_index: int = IGNORE_INDEX, sequence_ids: torch.Tensor | None = None,
    num_sequences: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``hidden [B, T, D]``, unshifted ``labels [B, T]`` -> ``(sum_t log p(y_t), sum_t sum_v log p_v)``, ``[B]``;
    for packed rows ``[num_sequences]``, each kept token summed into its ``sequence_ids [B, T]`` entry instead of its
    row (:func:`src.losses.logprobs.sum_per_sequence`)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    h, targets, rows = kept_hidden(hidden, labels, ignore_index, sequence_ids)
    count = labels.size(0) if sequence_ids is None else num_sequences
    return _SequenceSums.apply(h, weight, bias, targets, rows, count, chunk_size)


def chunked_sequence_logps(
    hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
    chunk_size: int = 1024, average: bool = False, ignore_index: int = IGNORE_INDEX,
    sequence_ids: torch.Tensor | None = None, num_sequences: int = 0,
) -> torch.Tensor:
    """:func:`src.losses.logprobs.sequence_logps` on ``hidden W^T + b``: ``[B]`` sum (or mean) of kept log-probs, or
    ``[num_sequences]`` for packed rows (``sequence_ids``)."""
    total, _ = sequence_sums(hidden, labels, weight, bias, chunk_size, ignore_index, sequence_ids, num_sequences)
    if not average:
        return total
    return total / num_label_tokens(labels, ignore_index, True, sequence_ids, num_sequences).clamp(min=1)


def fused_sequence_logps(
    hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
    impl: str = "cce", average: bool = False, ignore_index: int = IGNORE_INDEX,
    sequence_ids: torch.Tensor | None = None, num_sequences: int = 0,
) -> torch.Tensor:
    """:func:`src.losses.logprobs.sequence_logps` on ``hidden [B, T, D] W^T + b``: ``[B]`` sum (or mean) of each row's
    kept log-probs, ``log p = -NLL`` per token summed into its row; for packed rows ``[num_sequences]``, summed into
    its ``sequence_ids [B, T]`` entry (as :func:`chunked_sequence_logps`)."""
    h, targets, rows = kept_hidden(hidden, labels, ignore_index, sequence_ids)  # (N, D), (N,), (N,)
    logp = -fused_token_nll(h, weight, targets, bias, impl, "none")  # (N,)
    sums = logp.new_zeros(num_sequences if sequence_ids is not None else labels.size(0)).index_add(0, rows, logp)
    if not average:
        return sums  # (B,) or (num_sequences,)
    return sums / num_label_tokens(labels, ignore_index, True, sequence_ids, num_sequences).clamp(min=1)


# Liger's per-token (reduction="none") backward is wrong for per-sequence weights (fused_ce.py): cce only.
SEQUENCE_LOGPS = LossForms("sequence log-probs", plain=sequence_logps, chunked=chunked_sequence_logps,
                           fused=fused_sequence_logps, fused_impls=("cce",), rows=True)
