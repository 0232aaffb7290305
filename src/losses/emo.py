"""EMO: Earth Mover Distance Optimization for LMs (Ren et al., ICLR 2024, arXiv 2310.04691), in every form.

``emo_loss`` / ``emo_token_terms`` on the logits; ``chunked_emo_loss`` / ``chunked_emo_terms`` from the hidden states
and the LM head, a chunk of tokens at a time (``chunked.py``'s engine). :data:`EMO` and :data:`EMO_TERMS` list them.

The chunked form. Every EMO quantity is per token: ``q_t = softmax(z_t)``, the transport cost
``emo_t = 1 - sum_v q_t(v) s_t(v)`` with the cosine row ``s_t(v) = Ê_{y_t}·Ê_v`` (``Ê`` the row-normalised cost
embedding), ``mle_t`` and the stop-gradient ratio that mixes them. So a chunk of rows holds all it needs, and the only
global quantity is the token normaliser, fixed before the loop as for CE. Per chunk the closed-form gradient w.r.t.
the fp32 logits is::

    d mle_t / dz_t = q_t - onehot(y_t)
    d emo_t / dz_t = q_t ⊙ (q_t·s_t - s_t)          (the ``+ sg(q_t(y_t))`` of remove_target_prob has none)
    emo1: dz_t = ½ (d mle_t + r_t d emo_t),  r_t = sg(min(mle_t / (emo_t + 1e-10), clamp))
    emo2: dz_t = r_t d mle_t + d emo_t,      r_t = sg(emo_t / (mle_t + 1e-10))

The plain path's one ``[N, V] @ [V, D]`` product ``q Ê`` becomes the cosine rows ``Ê_y Ê^T`` ``[c, V]`` here: the
gradient needs ``s_t`` over the whole vocabulary anyway. The cost embedding gets no gradient on this path (every
official training variant detaches it); a cost embedding that requires grad is refused.
"""

from __future__ import annotations

import torch

from src.losses.chunked import ChunkGrad, chunk_logits, fused_linear_loss
from src.losses.forms import LossForms
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


def _cosine_rows(cost: torch.Tensor, inv_norm: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``s [c, V]``, ``s_t(v) = cos(E_{y_t}, E_v)``, without a normalised ``[V, D]`` copy of ``cost``."""
    return ((cost[y] * inv_norm[y, None]) @ cost.T).mul_(inv_norm)  # (c, D) @ (D, V) -> (c, V)


def _emo_chunk(cost: torch.Tensor, inv_norm: torch.Tensor, mix: str, ratio_clamp: float | None,
               remove_target_prob: bool) -> ChunkGrad:
    def chunk(z: torch.Tensor, y: torch.Tensor, _: slice) -> tuple[torch.Tensor, torch.Tensor]:
        lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (c, 1)
        mle = (lse - z.gather(-1, y.unsqueeze(-1))).squeeze(-1)  # (c,)
        q = z.sub_(lse).exp_()  # (c, V) softmax, in place: z is not needed any more
        s = _cosine_rows(cost, inv_norm, y)  # (c, V)
        qs = torch.einsum("cv,cv->c", q, s)  # (c,) expected cosine similarity
        emo = 1 - qs
        if remove_target_prob:
            emo = emo + q.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        if mix == "emo1":
            ratio = mle / (emo + _RATIO_EPS)
            if ratio_clamp is not None:
                ratio = ratio.clamp(max=ratio_clamp)
            loss = 0.5 * (mle + ratio * emo)
            a, b = torch.full_like(mle, 0.5), 0.5 * ratio  # dz = a (q - onehot) + b q (qs - s)
        else:
            ratio = emo / (mle + _RATIO_EPS)
            loss = ratio * mle + emo
            a, b = ratio, torch.ones_like(mle)
        # q (a + b (qs - s)) - a onehot, in place in s: [c, V] buffers are z (now q) and s only.
        dz = s.sub_(qs[:, None]).mul_(-b[:, None]).add_(a[:, None]).mul_(q)
        dz.scatter_add_(-1, y.unsqueeze(-1), -a.unsqueeze(-1))
        return loss.sum(), dz

    return chunk


def _checked_cost(cost_embedding: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cost embedding in the chunk logits' dtype (the head's, fp32 for a half head) and ``1 / |E_v|`` with
    F.normalize's 1e-12 floor, as the plain path (which casts it to the logits' dtype)."""
    if cost_embedding.requires_grad:
        raise ValueError("the chunked EMO loss gives the cost embedding no gradient: pass it detached "
                         "(as every official training variant does), or use the plain emo_loss")
    if cost_embedding.dim() != 2 or cost_embedding.size(0) != weight.size(0):
        raise ValueError(f"cost_embedding must be [V={weight.size(0)}, D], got {tuple(cost_embedding.shape)}")
    cost = cost_embedding.to(torch.promote_types(weight.dtype, torch.float32))
    return cost, cost.norm(dim=-1).clamp(min=1e-12).reciprocal()  # (V, D), (V,)


def chunked_emo_loss(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cost_embedding: torch.Tensor,
    bias: torch.Tensor | None = None, mix: str = "emo2", ratio_clamp: float | None = None,
    remove_target_prob: bool = True, *, chunk_size: int = 1024, num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """:func:`src.losses.emo.emo_loss` on ``h W^T + b`` (``h [N, D]``, ``targets [N]`` from ``kept_hidden``): the
    same variants (``mix``, ``ratio_clamp``, ``remove_target_prob``), value, gradient and reduction."""
    if mix not in EMO_MIX:
        raise ValueError(f"mix must be one of {EMO_MIX}, got {mix!r}")
    if ratio_clamp is not None and (mix != "emo1" or not ratio_clamp > 0):
        raise ValueError(f"ratio_clamp must be > 0 and only with mix='emo1', got {ratio_clamp} with {mix!r}")
    cost, inv_norm = _checked_cost(cost_embedding, weight)
    chunk = _emo_chunk(cost, inv_norm, mix, ratio_clamp, remove_target_prob)
    return fused_linear_loss(h, weight, bias, targets, chunk_size, chunk, num_items_in_batch)


@torch.no_grad()
def chunked_emo_terms(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cost_embedding: torch.Tensor,
    bias: torch.Tensor | None = None, remove_target_prob: bool = True, chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token means of ``(emo, mle)`` for logging, as :func:`src.losses.emo.emo_token_terms` then ``.mean()``."""
    cost, inv_norm = _checked_cost(cost_embedding.detach(), weight)
    emo_sum = torch.zeros((), dtype=cost.dtype, device=h.device)
    mle_sum = torch.zeros_like(emo_sum)
    for start in range(0, h.size(0), chunk_size):
        y = targets[start:start + chunk_size]
        logp = torch.log_softmax(chunk_logits(h[start:start + chunk_size], weight, bias), dim=-1)  # (c, V)
        q = logp.exp()
        emo = 1 - torch.einsum("cv,cv->c", q, _cosine_rows(cost, inv_norm, y))
        if remove_target_prob:
            emo += q.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        emo_sum += emo.sum()
        mle_sum -= logp.gather(-1, y.unsqueeze(-1)).sum()
    n = max(h.size(0), 1)
    return emo_sum / n, mle_sum / n


def emo_terms(logits: torch.Tensor, labels: torch.Tensor, cost_embedding: torch.Tensor,
              remove_target_prob: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Token means of :func:`emo_token_terms` ``(emo, mle)``, for logging."""
    emo, mle = emo_token_terms(logits, labels, cost_embedding, remove_target_prob)  # (N,) each
    return emo.mean(), mle.mean()


def _chunked_emo_means(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, bias: torch.Tensor | None,
                       chunk_size: int, cost_embedding: torch.Tensor,
                       remove_target_prob: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    emo, mle = chunked_emo_terms(h, weight, targets, cost_embedding, bias, remove_target_prob, chunk_size)
    return emo.float(), mle.float()


EMO = LossForms("emo", plain=emo_loss, chunked=chunked_emo_loss)  # no fused form: the cost needs all of q
EMO_TERMS = LossForms("emo terms", plain=emo_terms, chunked=_chunked_emo_means)
