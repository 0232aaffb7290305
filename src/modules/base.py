"""The shared base of every objective: backbone injection, optimizer and schedule, the step, and metric logging.

An objective subclass declares its hyperparameters and implements ``objective`` (SFT-style losses on logits) or
overrides ``step`` (DPO). ``step`` returns a :class:`StepResult`. The backbone is built in ``configure_model`` so
sharding strategies can wrap it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from lightning.pytorch import LightningModule

from src.losses.ce import ce_loss
from src.losses.logprobs import IGNORE_INDEX, num_label_tokens, shift

Metrics = dict[str, torch.Tensor]


class StepResult(NamedTuple):
    """What one step hands its caller: the tensor to backpropagate, the tokens it averaged, and what to log."""

    loss: torch.Tensor  # the training loss, with its graph (scaled by the token denominator on train steps)
    tokens: torch.Tensor  # 0-d: the label tokens of this micro-batch (DPO: the chosen ones), the weight of its ``ce``
    metrics: Metrics  # detached values to log under ``{stage}/``; ``loss`` is this micro-batch's token mean


class NonFiniteLossError(FloatingPointError):
    """Raised before backward, so the weights and the last checkpoint are still good."""


class PostTrainModule(LightningModule):
    loss_is_ce = False  # True when the objective's value is the CE itself, so it is not computed twice

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model_factory, self.optimizer_factory, self.scheduler_factory = model, optimizer, scheduler
        self.model: torch.nn.Module | None = None
        self._val_nll = [0.0, 0]  # (sum of token NLL, tokens) over the validation epoch

    # --- model ------------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build the backbone once (Lightning calls this inside the strategy's init context)."""
        if self.model is None:
            self.model = self.model_factory()
            self.on_model_built()

    def on_model_built(self) -> None:
        """Hook for objectives that derive state from the fresh backbone (a reference copy, a cost embedding)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)

    # --- the objective -------------------------------------------------------------------------------------------
    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """The training loss on ``logits (B, T, V)`` and unshifted ``labels (B, T)``, plus extra metrics."""
        raise NotImplementedError

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> StepResult:
        """One SFT-style step: forward, the objective, and the true CE and entropy for comparison."""
        labels = batch["labels"]
        logits = self(batch["input_ids"], batch["attention_mask"])
        denominator = self.token_denominator(batch) if stage == "train" else None
        loss, metrics = self.objective(logits, labels, denominator)
        kept = num_label_tokens(labels).clamp(min=1)
        # The logged loss is always this micro-batch's token mean, whatever normalised the gradient.
        metrics["loss"] = loss.detach() * denominator / kept if denominator is not None else loss.detach()
        if self.loss_is_ce:
            metrics["ce"] = metrics["loss"]
        if stage != "train" or self.logs_this_step():
            with torch.no_grad():  # diagnostics cost a pass over (N, V): only on steps that are written out
                metrics.setdefault("ce", ce_loss(logits.detach(), labels))
                metrics["entropy"] = predictive_entropy(logits.detach(), labels)
        return StepResult(loss, kept, metrics)

    def logs_this_step(self) -> bool:
        if self._trainer is None:
            return True
        return self.global_step % max(1, self.trainer.log_every_n_steps) == 0

    def token_denominator(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The ``num_items_in_batch`` that makes token means exact over the accumulation window and all ranks.

        Lightning divides each micro-batch loss by ``accumulate_grad_batches`` (k) and DDP averages over the W ranks,
        so ``sum / (N_global / (k W))`` per micro-batch adds up to ``sum_all / N_global``.
        """
        if "num_items_in_batch" not in batch or self._trainer is None:
            return None
        total = self.trainer.strategy.reduce(batch["num_items_in_batch"].float(), reduce_op="sum")
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size
        return (total / scale).clamp(min=1.0 / scale)

    # --- Lightning hooks -------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _, metrics = self.step(batch, "train")
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite train/loss ({loss.item()}) at global step {self.global_step}, batch {batch_idx}; "
                "stopping before the update, so the last checkpoint holds good weights. Lower the learning rate, "
                "check the data, or use fp32/bf16 instead of fp16."
            )
        size = batch_size_of(batch)
        self.log("train/loss", metrics.pop("loss"), prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in metrics.items()}, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, tokens, metrics = self.step(batch, "val")
        self._val_nll[0] += float(metrics.pop("ce")) * int(tokens)  # token-weighted over the whole val set
        self._val_nll[1] += int(tokens)
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, on_epoch=True, sync_dist=True,
                      batch_size=batch_size_of(batch))

    def on_validation_epoch_start(self) -> None:
        self._val_nll = [0.0, 0]

    def on_validation_epoch_end(self) -> None:
        totals = torch.tensor(self._val_nll, dtype=torch.float64, device=self.device)
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum") if self._trainer else totals
        ce = (totals[0] / totals[1].clamp(min=1)).float()
        self.log("val/ce", ce, prog_bar=True)
        self.log("val/ppl", torch.exp(ce.clamp(max=50.0)), prog_bar=True)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.scheduler_factory(optimizer, num_training_steps=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def predictive_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distribution over positions with a kept label."""
    logits, labels = shift(logits, labels)
    mask = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits[mask].float(), dim=-1)  # (N, V)
    if logp.shape[0] == 0:
        return logits.new_zeros((), dtype=torch.float32)
    return -(logp.exp() * logp).sum(-1).mean()


def batch_size_of(batch: dict[str, torch.Tensor]) -> int:
    first = next(v for k, v in batch.items() if k.endswith("input_ids"))
    return first.shape[0]
