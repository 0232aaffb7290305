"""Token losses from the last hidden states and the LM head, never building the ``[N, V]`` logits of the whole batch.

The fused-linear pattern of Liger-Kernel's ``LigerFusedLinearCrossEntropyFunction`` (Hsu et al. 2024, arXiv
2410.10989): for a chunk of ``c`` kept tokens compute ``z = h W^T + b`` ``[c, V]`` in fp32, the loss and its closed-form
gradient ``dz`` inside forward, accumulate ``dL/dh = dz W`` (per chunk) and ``dL/dW = dz^T h`` (summed), and free the
chunk. Backward only scales the stored gradients by ``grad_output``. Peak extra memory is ``O(c V)`` instead of
``O(N V)``; the price is that the loss's value and gradient are computed together, so the loss must be the last
non-linear step (true of every SFT loss here: a token sum over a normaliser fixed before the loop).

Inputs: ``h [N, D]`` and ``targets [N]`` from :func:`kept_hidden`, ``weight [V, D]`` (``get_output_embeddings()``),
an optional ``bias [V]`` (Llama has none). Every loss here equals its plain counterpart on ``h W^T + b`` (tests).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from src.losses.logprobs import IGNORE_INDEX, shift_labels

# (z [c, V] fp32 logits, y [c], the chunk's rows as a slice of N) -> (sum of the chunk's per-token losses,
# dz [c, V] = d(that sum)/dz); it may overwrite z.
ChunkGrad = Callable[[torch.Tensor, torch.Tensor, slice], tuple[torch.Tensor, torch.Tensor]]


def kept_hidden(
    hidden: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
    sequence_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``hidden [B, T, D], labels [B, T] -> h [N, D], targets [N], rows [N]`` for the N kept, shifted positions.

    The labels are shifted (:func:`shift_labels`), the hidden states only indexed, so an ignored position never gets a
    logit row. ``rows`` is each kept token's batch row, or with packed rows' ``sequence_ids [B, T]`` the sequence its
    label belongs to (for per-sequence sums).
    """
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    targets = shift_labels(labels, ignore_index)  # (B, T)
    mask = targets != ignore_index
    rows = mask.nonzero()[:, 0] if sequence_ids is None else shift_labels(sequence_ids)[mask]  # (N,)
    return hidden[mask], targets[mask], rows  # (N, D), (N,), (N,)


def chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``[c, D] -> [c, V]`` logits in the head's dtype, as the model's ``lm_head`` computes them; then fp32 if half."""
    z = h @ weight.T if bias is None else torch.addmm(bias, h, weight.T)
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)  # fp32 for half inputs, float64 stays float64


def fused_linear_grads(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, chunk_size: int,
    chunk_grad: ChunkGrad, scale: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(loss, dL/dh [N, D], dL/dW [V, D], dL/db [V] | None)`` of ``loss = scale * sum_t loss_t`` over the chunks."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    acc = acc_dtype(h)
    total = torch.zeros((), dtype=acc, device=h.device)
    grad_h = torch.empty_like(h)
    grad_w = torch.zeros_like(weight, dtype=acc)  # fp32 (at least) accumulator over the chunks
    grad_b = None if bias is None else torch.zeros_like(bias, dtype=acc)
    for start in range(0, h.size(0), chunk_size):
        rows = slice(start, start + chunk_size)
        h_c = h[rows]  # (c, D), a view
        loss_c, dz = chunk_grad(chunk_logits(h_c, weight, bias), targets[rows], rows)  # (), (c, V)
        total += loss_c
        dz = dz.mul_(scale).to(h.dtype)
        grad_h[rows] = dz @ weight  # (c, D)
        grad_w.addmm_(dz.T.to(acc), h_c.to(acc))  # (V, D) in place: no [V, D] temporary per chunk
        if grad_b is not None:
            grad_b += dz.sum(0)
        del dz
    return total * scale, grad_h, grad_w.to(weight.dtype), None if grad_b is None else grad_b.to(bias.dtype)


def normaliser(n_tokens: int, num_items_in_batch: torch.Tensor | float | None) -> torch.Tensor | float:
    """``1 / N`` (the micro-batch's kept tokens, at least 1) or ``1 / num_items_in_batch``, as ``token_reduce``."""
    return 1.0 / max(n_tokens, 1) if num_items_in_batch is None else 1.0 / num_items_in_batch


class _FusedLinearLoss(torch.autograd.Function):
    """Value in forward, gradients precomputed there; backward scales them by the (scalar) ``grad_output``."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk_size, chunk_grad, scale):
        loss, grad_h, grad_w, grad_b = fused_linear_grads(h, weight, bias, targets, chunk_size, chunk_grad, scale)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        # The stored gradients are scaled in place (as Liger does): a second [V, D] copy of dW would undo much of the
        # memory saved. So the graph can be backpropagated once only; retain_graph=True and a second pass is refused.
        if getattr(ctx, "consumed", False):
            raise RuntimeError("a chunked loss's graph can be backpropagated only once (its gradients were consumed)")
        ctx.consumed = True
        grads = ctx.saved_tensors
        if not torch.all(grad_output == 1):
            for x in grads:
                if x is not None:
                    x.mul_(grad_output.to(x.dtype))
        grads = [x if need else None for x, need in zip(grads, ctx.needs_input_grad[:3])]
        return (*grads, None, None, None, None)


def fused_linear_loss(h, weight, bias, targets, chunk_size, chunk_grad, num_items_in_batch=None) -> torch.Tensor:
    scale = normaliser(h.size(0), num_items_in_batch)
    if isinstance(scale, torch.Tensor):
        scale = scale.detach().to(acc_dtype(h))
    return _FusedLinearLoss.apply(h, weight, bias, targets, chunk_size, chunk_grad, scale)
