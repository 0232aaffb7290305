"""EMO: Earth Mover Distance Optimization for LMs (Ren et al., ICLR 2024, arXiv 2310.04691)."""

from __future__ import annotations

import torch

from src.losses.logprobs import IGNORE_INDEX, gather_logps, kept_logits
from src.losses.reduction import token_reduce

EMO_MIX = ("emo1", "emo2")
_RATIO_EPS = 1e-10  # the official epsilon of the loss-ratio weights


def emo_token_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    cost_embedding: torch.Tensor,
    remove_target_prob: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per kept token ``(emo [N], mle [N])``, the two terms :func:`emo_loss` mixes (also useful for logging).

    With ``Ê`` the row-normalised ``cost_embedding [V, D]`` and cost ``C(u, v) = 1 - Ê_u·Ê_v`` (cosine distance)::

        emo_t = sum_v q_t(v) C(y_t, v) = 1 - (q_t Ê)·Ê_{y_t}        (+ sg(q_t(y_t)) if remove_target_prob)

    one ``[N, V] @ [V, D]`` matmul plus a gather; no ``V x V`` cost and no one-hot matmul. The official
    ``q - sg(q*onehot)`` ("remove the ground-truth probability") adds ``q_t(y_t)`` to the value and leaves the gradient
    unchanged; that is what the ``sg`` term does here.
    """
    z, y = kept_logits(logits, labels, ignore_index)  # (N, V) fp32 if half, (N,)
    if cost_embedding.dim() != 2 or cost_embedding.size(0) != z.size(-1):
        raise ValueError(f"cost_embedding must be [V={z.size(-1)}, D], got {tuple(cost_embedding.shape)}")
    e = cost_embedding.to(z.dtype)  # (V, D), fp32 like the logits (a copy only for a half-precision embedding)
    # 1/|E_v| with F.normalize's 1e-12 floor: an all-zero row costs 1 where the official code gives NaN.
    inv_norm = e.norm(dim=-1).clamp(min=1e-12).reciprocal()  # (V,)
    q = torch.softmax(z, dim=-1)  # (N, V)
    # q Ê = (q / |E|) E: scaling the [N, V] side avoids a normalised [V, D] copy, and the scaled q is not kept for
    # backward unless E requires grad.
    q_e = (q * inv_norm) @ e  # (N, D)
    emo = 1 - (q_e * e[y]).sum(-1) * inv_norm[y]  # (N,)
    if remove_target_prob:
        emo = emo + q.gather(-1, y.unsqueeze(-1)).squeeze(-1).detach()
    return emo, -gather_logps(z, y)


def emo_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    cost_embedding: torch.Tensor,
    mix: str = "emo2",
    ratio_clamp: float | None = None,
    remove_target_prob: bool = True,
    ignore_index: int = IGNORE_INDEX,
    *,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """EMO mixed with MLE through a per-token stop-gradient loss ratio; token mean over the kept tokens.

    ``logits [B, T, V]``, ``labels [B, T]`` unshifted; ``cost_embedding [V, D]`` is usually the LM head (a frozen copy,
    or the live head detached). It is *not* detached here: gradient reaches it only when the caller passes a tensor that
    requires grad (as the PyPI package does); every official training variant passes a detached one.
    See :func:`emo_token_terms` for ``emo_t`` (an upper bound of the EMD to the one-hot target); ``mle_t`` is the CE.

    - ``mix="emo1"`` (MLE emphasised): ``½(mle + r·emo)``, ``r = sg(mle / (emo + 1e-10))``, optionally
      ``min(r, ratio_clamp)``. The value equals CE when unclamped; EMO's gradient is rescaled to MLE's size.
    - ``mix="emo2"`` (EMO emphasised): ``sg(emo / (mle + 1e-10))·mle + emo``. The value is ``2·emo``, not a CE.

    Official variants reproduced (``DRSY/EMO``; same ``E`` in, same value and gradient out):

    - ``emo_patch.emo1_adaptive`` and ``instruction_tuning``: ``mix="emo1"`` (pass the live head, detached);
    - ``emo_patch.emo2_fixed``/``emo2_adaptive``, ``continual_finetuning --mode emo2``: ``mix="emo2"`` (the default);
    - ``continual_finetuning --mode emo``: ``mix="emo1", ratio_clamp=3.0``;
    - ``language_modeling/gpt2.py`` mode ``emo``: ``mix="emo1", remove_target_prob=False``;
    - PyPI ``EMOLoss`` 0.0.3 mode 1 / mode 2: ``remove_target_prob=False`` with ``mix="emo1", ratio_clamp=3.0`` /
      ``mix="emo2"``.

    Reduction: mean over the kept tokens of the micro-batch (official, its ``1e-15`` denominator guard aside), or
    ``sum / num_items_in_batch`` when given (global-batch token mean). Everything runs in fp32 for half-precision
    logits or embedding (the ``[V, D]`` embedding is then copied to fp32): the official code, run in fp16, gives NaN as
    soon as a label is ``-100`` (the 1e-10 epsilon underflows and masked rows give 0/0); this one stays finite. Under
    ``torch.autocast`` the single matmul runs in the autocast dtype like any other matmul.
    """
    if mix not in EMO_MIX:
        raise ValueError(f"mix must be one of {EMO_MIX}, got {mix!r}")
    if ratio_clamp is not None and mix != "emo1":
        raise ValueError("ratio_clamp only applies to mix='emo1' (no official variant clamps emo2)")
    if ratio_clamp is not None and not ratio_clamp > 0:
        raise ValueError(f"ratio_clamp must be > 0 or None, got {ratio_clamp}")
    emo, mle = emo_token_terms(logits, labels, cost_embedding, remove_target_prob, ignore_index)  # (N,) each
    if mix == "emo1":
        ratio = (mle / (emo + _RATIO_EPS)).detach()
        if ratio_clamp is not None:
            ratio = ratio.clamp(max=ratio_clamp)
        loss_tok = 0.5 * (mle + ratio * emo)
    else:
        loss_tok = (emo / (mle + _RATIO_EPS)).detach() * mle + emo
    kept = torch.ones_like(loss_tok, dtype=torch.bool)  # rows are already the kept tokens
    return token_reduce(loss_tok, kept, num_items_in_batch)
