"""Convex learning (Shao et al., NeurIPS 2023, "Beyond MLE: Convex Learning for Text Generation")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from src.losses.ce import CE
from src.losses.convex import CONVEX, CONVEX_REDUCTIONS
from src.losses.head_outputs import HeadOutput
from src.modules.base import Metrics, PostTrainModule
from src.utils.checks import require, require_choice


class ConvexModule(PostTrainModule):
    """The convex-composition loss ``-p(y)^(k/L)`` per sequence, with an optional MLE warm start.

    ``ce_warmup_steps > 0`` trains with CE for that many optimizer steps, then switches to the convex loss: the fairseq
    recipe's two stages (MLE, then ``--finetune-from-model`` with the convex criterion) in one run. The convex gradient
    weights each sequence by its geometric-mean token probability, which is tiny for a model that cannot yet produce
    the data. The LLM recipe (``ictnlp/Convex-Learning`` ``LLM/train/run_convex.py``) has no warm start
    (``ce_warmup_steps: 0``). ``train/phase`` logs 0 during the CE warm start and 1 once the convex loss is on.
    Packed rows (``data.packing=true``) are refused: ``p(y)^(k/L)`` is taken per row, which packing would make a row
    of several documents.
    """

    losses = (CE, CONVEX)  # plain and chunked: the convex loss has no fused-kernel form
    supports_packing = False

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
        order: float = 1.0,
        label_smoothing: float = 0.0,
        reduction: str = "token",
        ce_warmup_steps: int = 0,
    ):
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        require(order > 0, "module.order", order, "> 0 (the convex order k of exp(k * mean log p))")
        require(0 <= label_smoothing < 1, "module.label_smoothing", label_smoothing, "0 <= eps < 1")
        require_choice("module.reduction", reduction, CONVEX_REDUCTIONS)
        require(ce_warmup_steps >= 0, "module.ce_warmup_steps", ce_warmup_steps, ">= 0 optimizer steps")
        self.order, self.label_smoothing, self.reduction = order, label_smoothing, reduction
        self.ce_warmup_steps = ce_warmup_steps

    def in_ce_warmup(self) -> bool:
        """True for the first ``ce_warmup_steps`` optimizer steps (``global_step`` is restored on resume)."""
        return self.global_step < self.ce_warmup_steps

    def token_denominator(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        # The sentence reduction averages over sequences per micro-batch: a token count must not rescale it (nor the
        # loss the base logs). Lightning's 1/k per micro-batch then gives the mean over the accumulation window.
        return None if self.reduction == "sentence" else super().token_denominator(batch)

    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        warm = self.in_ce_warmup()
        if warm:
            loss = out.loss(CE, num_items_in_batch=num_items_in_batch)
        else:
            loss = out.loss(CONVEX, order=self.order, label_smoothing=self.label_smoothing, reduction=self.reduction,
                            num_items_in_batch=num_items_in_batch)
        metrics = {"phase": torch.tensor(0.0 if warm else 1.0, device=loss.device)} if self.training else {}
        return loss, metrics
