"""GEM: entropic distribution matching for SFT (Li et al., arXiv 2408.16673, "Preserving Diversity in SFT")."""

from __future__ import annotations

import torch

from src.losses.chunked import ChunkGrad, fused_linear_loss
from src.losses.forms import LossForms
from src.losses.logprobs import IGNORE_INDEX, kept_logits
from src.losses.reduction import token_reduce

GEM_H = ("linear", "logsigmoid")


def gem_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 0.7,
    h: str = "linear",
    ignore_index: int = IGNORE_INDEX,
    *,
    logsigmoid_scale: float = 0.01,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """GEM surrogate loss, token-mean over the kept tokens.

    ``logits [B, T, V]``, ``labels [B, T]`` unshifted (Hugging Face convention, ``ignore_index`` = prompt/padding).
    The game-theoretic objective of the paper (reverse KL with entropy regularisation) is realised, as in the
    official code, by an auxiliary distribution in closed form, ``q = softmax(z / beta)`` of the current model,
    detached. Per kept token with gold label ``y``::

        c_v      = sg(q_v * w_v),  w_v = 1 (h="linear")  or  sigmoid(s * (z_v - z_y)) (h="logsigmoid", s = 0.01)
        loss_tok = -sum_v c_v (log p_y - log p_v) = sum_v c_v (z_v - z_y)     # log-partition cancels
        d loss_tok / dz = c - (sum_v c_v) * onehot(y)

    so no ``[N, V]`` log-softmax is built. ``h="linear"`` gives ``loss_tok = CE - H(q, p)`` and gradient ``q - onehot``;
    at ``beta=1`` this is exactly the CE gradient. ``h="logsigmoid"`` has the gradient of
    ``-sum_v q_v * 100 log sigmoid(0.01 (log p_y - log p_v))``; for logit gaps << 100 its weights are ~0.5, i.e. about
    half the linear gradient. Small ``beta`` keeps more diversity (``q`` -> onehot(argmax)); ``beta`` -> 1 acts like CE.

    The value is a surrogate with frozen weights, not comparable to CE, and it is negative whenever the target is
    already the argmax. Log CE separately.

    Reduction: mean over the kept tokens of this micro-batch (official ``sft_trainer.py``, transformers < 4.46), or
    ``sum / num_items_in_batch`` when given (official ``sft_trainer_v2.py``: a token mean over the global batch, which
    our training module uses). Matches ``liziniu/GEM`` ``SFTTrainer.gem_loss`` for both ``h`` (its
    ``logsigmoid_scale`` is the hard-coded 0.01). Softmaxes run in fp32 for half-precision logits.
    """
    if h not in GEM_H:
        raise ValueError(f"h must be one of {GEM_H}, got {h!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    z, y = kept_logits(logits, labels, ignore_index)  # (N, V) fp32 if half, (N,)
    z_y = z.gather(-1, y.unsqueeze(-1))  # (N, 1)
    with torch.no_grad():
        c = torch.softmax(z / beta, dim=-1)  # q, (N, V)
        if h == "logsigmoid":
            c.mul_((z - z_y).mul_(logsigmoid_scale).sigmoid_())  # q_v * w_v, one (N, V) temporary
    # einsum reduces over V without an (N, V) product; its backward is c, the closed-form gradient.
    loss_tok = torch.einsum("nv,nv->n", c, z) - c.sum(-1) * z_y.squeeze(-1)  # (N,)
    kept = torch.ones_like(loss_tok, dtype=torch.bool)  # rows are already the kept tokens
    return token_reduce(loss_tok, kept, num_items_in_batch)


def _gem_chunk(beta: float, h: str, scale: float) -> ChunkGrad:
    def chunk(z: torch.Tensor, y: torch.Tensor, _: slice) -> tuple[torch.Tensor, torch.Tensor]:
        z_y = z.gather(-1, y.unsqueeze(-1))  # (c, 1)
        c = torch.softmax(z / beta, dim=-1)  # q, (c, V)
        if h == "logsigmoid":
            c.mul_((z - z_y).mul_(scale).sigmoid_())  # q_v * w_v
        weight_sum = c.sum(-1, keepdim=True)  # (c, 1)
        loss = torch.einsum("nv,nv->", c, z) - (weight_sum * z_y).sum()
        c.scatter_add_(-1, y.unsqueeze(-1), -weight_sum)  # c - S onehot(y): the gradient of sum_v c_v (z_v - z_y)
        return loss, c

    return chunk


def chunked_gem_loss(
    h_states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
    beta: float = 0.7, h: str = "linear", *, logsigmoid_scale: float = 0.01, chunk_size: int = 1024,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """:func:`src.losses.gem.gem_loss` on ``h_states W^T + b``; same formula, reduction and ``num_items_in_batch``.

    Every GEM quantity is per token (``q = softmax(z / beta)`` and the weights ``w`` normalise over the vocabulary of
    one row), so a chunk of rows holds all it needs. The one global quantity is the normaliser: the micro-batch's
    kept-token count N, known from the labels before the first chunk, or ``num_items_in_batch`` given by the caller
    (the accumulation window's and all ranks' count, from the batch). The per-chunk sums are scaled by it, so the
    result is exact, not an average of chunk means.
    """
    if h not in GEM_H:
        raise ValueError(f"h must be one of {GEM_H}, got {h!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chunk = _gem_chunk(beta, h, logsigmoid_scale)
    return fused_linear_loss(h_states, weight, bias, targets, chunk_size, chunk, num_items_in_batch)


GEM = LossForms("gem", plain=gem_loss, chunked=chunked_gem_loss)  # no fused form: a CE kernel gives only log p(y)
