"""Every form of one loss, so the head path a run picks (``module.loss_impl``) can find the one it computes.

A loss may be computed three ways, all with the same value and gradient (tested pairwise):

- ``plain``: on the logits ``[B, T, V]`` and the unshifted labels ``[B, T]``;
- ``chunked``: from the last hidden states and the LM head, a chunk of tokens at a time (``chunked.py``), never
  holding the ``[N, V]`` logits;
- ``fused``: from the hidden states and the head through a third-party fused CE kernel (``fused_ce.py``: ``cce``,
  ``liger``), which returns ``-log p(y)`` and nothing else of the distribution, so only CE-derived quantities have it.

A loss file declares its forms once, e.g. ``GEM = LossForms("gem", plain=gem_loss, chunked=gem_on_hidden)``; an
objective lists the :class:`LossForms` it computes, and the ``loss_impl`` values it accepts are those all of them
offer (:func:`common_impls`). Calling conventions, keyword arguments passed through:

- ``plain(logits [B, T, V], labels [B, T], **kw)``;
- ``chunked(h [N, D], weight [V, D], targets [N], *, bias, chunk_size, **kw)`` on the kept, shifted positions of
  :func:`src.losses.chunked.kept_hidden`, or with ``rows=True`` (a per-sequence quantity, which needs each token's
  row) ``chunked(hidden [B, T, D], labels [B, T], weight, *, bias, chunk_size, **kw)``;
- ``fused`` as ``chunked``, with ``impl=`` (the kernel) instead of ``chunk_size=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

FUSED_IMPLS = ("cce", "liger")  # the third-party fused CE kernels (fused_ce.py)
HEAD_PATHS = ("plain", "chunked", *FUSED_IMPLS)  # every concrete module.loss_impl


@dataclass(frozen=True)
class LossForms:
    name: str
    plain: Callable
    chunked: Callable | None = None
    fused: Callable | None = None
    fused_impls: tuple[str, ...] = FUSED_IMPLS  # the kernels whose output the fused form may use
    rows: bool = False  # the chunked and fused forms take whole rows, not the kept positions

    @property
    def impls(self) -> tuple[str, ...]:
        """The ``module.loss_impl`` values this loss can run under."""
        return (("plain",) + (("chunked",) if self.chunked is not None else ())
                + (self.fused_impls if self.fused is not None else ()))


def common_impls(losses: Iterable[LossForms]) -> tuple[str, ...]:
    """The ``loss_impl`` values every one of ``losses`` offers, in :data:`HEAD_PATHS` order."""
    losses = tuple(losses)
    return tuple(impl for impl in HEAD_PATHS if all(impl in loss.impls for loss in losses))
