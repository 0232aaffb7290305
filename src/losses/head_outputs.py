"""What a head path hands an objective: the logits, or the last hidden states with the LM head.

Both offer the same questions, so an objective is written once for every ``module.loss_impl``:

- :meth:`loss` ``(forms, **kw)``: the loss in the form this output holds (:class:`src.losses.forms.LossForms`);
- :meth:`sequence_logps`: per-sequence summed (or mean) response log-probs, padded rows or packed ones;
- :meth:`diagnostics` and :meth:`mean_logit`: the true CE, the predictive entropy and the mean raw logit, for logging.

The head paths that make them (the backbone's forward) live in :mod:`src.modules.head_path`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from src.losses.ce import ce_loss
from src.losses.chunked import kept_hidden
from src.losses.diagnostics import chunked_ce_and_entropy, mean_logit, mean_logit_from_hidden, predictive_entropy
from src.losses.forms import LossForms
from src.losses.sequence_logps import SEQUENCE_LOGPS


class Logits(NamedTuple):
    """``module.loss_impl=plain``: the backbone's logits."""

    logits: torch.Tensor  # (B, T, V)
    labels: torch.Tensor  # (B, T) unshifted

    def loss(self, forms: LossForms, **kwargs: Any) -> Any:
        return forms.plain(self.logits, self.labels, **kwargs)

    def sequence_logps(self, average: bool = False, sequence_ids: torch.Tensor | None = None,
                       num_sequences: int = 0) -> torch.Tensor:
        """``[B]`` (packed: ``[num_sequences]``) summed or mean response log-probs."""
        return self.loss(SEQUENCE_LOGPS, average=average, sequence_ids=sequence_ids, num_sequences=num_sequences)

    def detach(self) -> Logits:
        return Logits(self.logits.detach(), self.labels)

    @torch.no_grad()
    def diagnostics(self, with_ce: bool = True) -> dict[str, torch.Tensor]:
        """Token-mean ``entropy`` and, if asked, ``ce`` over the kept tokens."""
        logits = self.logits.detach()
        out = {"ce": ce_loss(logits, self.labels)} if with_ce else {}
        out["entropy"] = predictive_entropy(logits, self.labels)
        return out

    def mean_logit(self) -> torch.Tensor:
        """``[B, T-1]``: each shifted position's logit averaged over the vocabulary."""
        return mean_logit(self.logits)


class HiddenStates(NamedTuple):
    """``module.loss_impl=chunked|cce|liger``: the final-normed hidden states the LM head reads, and the head."""

    hidden: torch.Tensor  # (B, T, D)
    labels: torch.Tensor  # (B, T) unshifted
    weight: torch.Tensor  # (V, D) get_output_embeddings().weight
    bias: torch.Tensor | None  # (V,) or None (Llama)
    impl: str  # chunked, or a fused kernel (cce, liger)
    chunk_size: int  # tokens per chunk under chunked

    def kept(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h [N, D], targets [N])`` at the kept, shifted positions (:func:`kept_hidden`)."""
        h, targets, _ = kept_hidden(self.hidden, self.labels)
        return h, targets

    def loss(self, forms: LossForms, **kwargs: Any) -> Any:
        form = forms.chunked if self.impl == "chunked" else forms.fused
        if form is None or self.impl not in forms.impls:  # objectives are refused this at configuration
            raise ValueError(f"the {forms.name} loss has no module.loss_impl={self.impl!r} form")
        path = {"chunk_size": self.chunk_size} if self.impl == "chunked" else {"impl": self.impl}
        if forms.rows:
            return form(self.hidden, self.labels, self.weight, bias=self.bias, **path, **kwargs)
        h, targets = self.kept()
        return form(h, self.weight, targets, bias=self.bias, **path, **kwargs)

    def sequence_logps(self, average: bool = False, sequence_ids: torch.Tensor | None = None,
                       num_sequences: int = 0) -> torch.Tensor:
        """:meth:`Logits.sequence_logps` from the hidden states, with no ``[.., V]`` logits."""
        return self.loss(SEQUENCE_LOGPS, average=average, sequence_ids=sequence_ids, num_sequences=num_sequences)

    def detach(self) -> HiddenStates:
        bias = None if self.bias is None else self.bias.detach()
        return self._replace(hidden=self.hidden.detach(), weight=self.weight.detach(), bias=bias)

    @torch.no_grad()
    def diagnostics(self, with_ce: bool = True) -> dict[str, torch.Tensor]:
        """:meth:`Logits.diagnostics` a chunk at a time (under every kernel: they give only ``log p(y)``); one pass
        yields both numbers, so ``ce`` is always returned."""
        h, targets = self.kept()
        ce, entropy = chunked_ce_and_entropy(h.detach(), self.weight.detach(), targets, self.bias, self.chunk_size)
        return {"ce": ce.float(), "entropy": entropy.float()}

    def mean_logit(self) -> torch.Tensor:
        """:meth:`Logits.mean_logit` as ``h . mean_v W_v + mean_v b_v``: exact, no ``[.., V]``."""
        return mean_logit_from_hidden(self.hidden, self.weight, self.bias)


HeadOutput = Logits | HiddenStates
