"""Cross-entropy from hidden states and the LM head through third-party fused kernels (``module.loss_impl=cce|liger``).

Both compute each kept token's NLL ``lse_v(h W^T)_v - (h W^T)_y`` without holding the ``[N, V]`` logits in memory:

- ``cce``: Cut Cross-Entropy (Wijmans et al. 2025, arXiv 2411.09009; ``cut_cross_entropy.linear_cross_entropy``).
  On CUDA its Triton kernel (``impl="cce"``) computes the log-sum-exp block by block in on-chip memory and recomputes
  the logit blocks in backward. Elsewhere ``impl="torch_compile"``: ``F.cross_entropy(h @ W^T)`` compiled by inductor,
  which fuses the softmax but does hold the logits (the first call compiles, ~20 s on CPU; ``dynamic=True`` reuses
  the graph across shapes). It takes no bias, so a biased head is refused.
- ``liger``: Liger-Kernel's fused linear cross-entropy (Hsu et al. 2024, arXiv 2410.10989;
  ``liger_kernel.transformers.functional.liger_fused_linear_cross_entropy``), Triton, CUDA only: the pattern of
  ``chunked.py`` (a chunk's logits, loss and gradient in forward). Its ``reduction="none"`` backward multiplies every
  token's gradient by the first token's upstream gradient in the releases before Liger-Kernel PR #1298 (issue #968),
  so with gradients only the sum is used; per-token NLL (DPO's log-probs) is refused.

Dtypes: the logits are ``h @ W^T`` in the inputs' dtype, as the model's ``lm_head`` computes them (CCE's Triton dot on
fp32 follows ``torch.get_float32_matmul_precision``: TF32 under "high"); the log-softmax and the returned NLL are
fp32 (CCE's torch.compile path also rounds float64 logits to fp32); the gradients come back in the inputs' dtype.

These are CE-only kernels: they return ``-log p(y)`` and its exact gradient and nothing else of the distribution, so
only CE and CE-derived log-probs (SFT, the DPO family's sequence log-probs) can use them; GEM, EMO and the convex loss
cannot.
"""

from __future__ import annotations

import torch

from src.losses.forms import FUSED_IMPLS

REDUCTIONS = ("none", "sum")


def fused_token_nll(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
    impl: str = "cce", reduction: str = "none",
) -> torch.Tensor:
    """``h [N, D]`` (the kept, shifted positions of :func:`kept_hidden`), ``weight [V, D]``, ``targets [N]`` ->
    ``-log softmax(h W^T + b)_y``: ``[N]`` (``reduction="none"``) or their 0-d sum (``"sum"``), fp32."""
    if impl not in FUSED_IMPLS:
        raise ValueError(f"impl must be one of {FUSED_IMPLS}, got {impl!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if h.size(0) == 0:  # no kept token: the kernels' launch grids would be empty; zero, still on the graph
        zero = (h.sum() + weight.sum()).float() * 0
        return zero.expand(0) if reduction == "none" else zero
    return (_cce if impl == "cce" else _liger)(h, weight, targets, bias, reduction)


def _cce(h, weight, targets, bias, reduction):
    if bias is not None:
        raise ValueError("module.loss_impl='cce': Cut Cross-Entropy has no bias argument and this LM head has a bias; "
                         "use module.loss_impl=chunked or plain")
    from cut_cross_entropy import linear_cross_entropy  # the optional `kernels` extra

    # filter_eps=None: the Triton kernel's default ("high", eps/32 of the dtype) skips the backward of vocabulary
    # blocks whose softmax is below it, an approximation of the gradient; None keeps it exact, so cce gives the plain
    # path's gradients to rounding like chunked does (the torch.compile path, which ignores filter_eps, is tested on
    # CPU; the Triton path has not run here).
    return linear_cross_entropy(h, weight, targets, reduction=reduction, filter_eps=None,
                                impl="cce" if h.is_cuda else "torch_compile")


def _liger(h, weight, targets, bias, reduction):
    if not h.is_cuda:
        raise RuntimeError("module.loss_impl='liger' runs Liger-Kernel's Triton kernel, which needs a CUDA device; "
                           "use module.loss_impl=cce (torch.compile off CUDA) or chunked")
    if reduction == "none" and torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        raise ValueError("module.loss_impl='liger': Liger's reduction='none' gives wrong gradients for per-token "
                         "upstream gradients (Liger-Kernel issue #968), which DPO's sequence log-probs have; "
                         "use module.loss_impl=cce or chunked")
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError as err:
        raise ImportError("module.loss_impl='liger' needs Liger-Kernel: pip install liger-kernel") from err
    return liger_fused_linear_cross_entropy(h, weight, targets, bias, reduction=reduction)
