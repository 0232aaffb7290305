"""The shared base of every objective: backbone injection, optimizer and schedule, the step, and metric logging.

An objective subclass declares its hyperparameters and implements ``objective`` (SFT-style losses on logits) or
overrides ``step`` (DPO). ``step`` returns a :class:`StepResult`. The backbone is built in ``configure_model`` so
sharding strategies can wrap it.

``loss_impl="chunked"`` never builds the ``[B, T, V]`` logits: the backbone returns its last hidden state and the
subclass's ``chunked_objective`` computes the loss from it and the LM head in chunks of ``loss_chunk_size`` tokens
(``src/losses/chunked.py``). A subclass without one sets ``supports_chunked = False`` and refuses the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from lightning.pytorch import LightningModule

from src.losses.ce import ce_loss
from src.losses.chunked import chunked_ce_and_entropy, kept_hidden
from src.losses.logprobs import IGNORE_INDEX, num_label_tokens, shift_labels
from src.utils.checks import require, require_choice

LOSS_IMPLS = ("plain", "chunked")

Metrics = dict[str, torch.Tensor]


class StepResult(NamedTuple):
    """What one step hands its caller: the tensor to backpropagate, the tokens it averaged, and what to log."""

    loss: torch.Tensor  # the training loss, with its graph (scaled by the token denominator on train steps)
    tokens: torch.Tensor  # 0-d: the label tokens of this micro-batch (DPO: the chosen ones), the weight of its ``ce``
    metrics: Metrics  # detached values to log under ``{stage}/``; ``loss`` is this micro-batch's token mean


class HeadInputs(NamedTuple):
    """What a chunked loss needs instead of logits: the last hidden states, the labels, and the LM head."""

    hidden: torch.Tensor  # (B, T, D) final (normed) hidden states, the LM head's input
    labels: torch.Tensor  # (B, T) unshifted
    weight: torch.Tensor  # (V, D) get_output_embeddings().weight
    bias: torch.Tensor | None  # (V,) or None (Llama)
    chunk_size: int

    def kept(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h [N, D], targets [N])`` at the kept, shifted positions (:func:`kept_hidden`)."""
        h, targets, _ = kept_hidden(self.hidden, self.labels)
        return h, targets


class NonFiniteLossError(FloatingPointError):
    """Raised before backward, so the weights and the last checkpoint are still good."""


class PostTrainModule(LightningModule):
    loss_is_ce = False  # True when the objective's value is the CE itself, so it is not computed twice
    supports_chunked = True  # False where the objective has no chunked loss (yet)
    supports_packing = True  # False where the loss sums per row (a packed row holds several documents)

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "plain",
        loss_chunk_size: int = 1024,
    ):
        """``loss_impl``: plain (logits ``[B, T, V]``, then the loss) or chunked (hidden states and the LM head,
        ``loss_chunk_size`` tokens at a time; the same values and gradients in far less memory)."""
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        require_choice("module.loss_impl", loss_impl, LOSS_IMPLS)
        require(loss_chunk_size >= 1, "module.loss_chunk_size", loss_chunk_size, ">= 1 tokens")
        require(loss_impl == "plain" or self.supports_chunked, "module.loss_impl", loss_impl,
                f"'plain': {type(self).__name__} has no chunked loss yet")
        self.loss_impl, self.loss_chunk_size = loss_impl, loss_chunk_size
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(**model_inputs(input_ids, attention_mask, position_ids), use_cache=False).logits  # (B, T, V)

    def head_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> HeadInputs:
        """The chunked path's forward: the backbone's last hidden state instead of its logits, and the LM head.

        Through the model's own ``forward`` (so a peft wrapper's hooks and adapters apply) with ``logits_to_keep=1``:
        Hugging Face causal LMs then project only the last position, ``[B, 1, V]``. ``hidden_states[-1]`` is the
        final-normed state the head reads. A head that is not a plain ``nn.Linear`` (LoRA on ``lm_head``) or a
        model that post-processes its logits (soft-capping) would be computed wrongly, so they are refused.
        """
        out = self.model(**model_inputs(input_ids, attention_mask, position_ids), use_cache=False,
                         output_hidden_states=True, logits_to_keep=1)
        head = self.model.get_output_embeddings()
        if type(head) is not torch.nn.Linear or getattr(self.model.config, "final_logit_softcapping", None):
            raise ValueError(f"module.loss_impl='chunked' needs a plain nn.Linear LM head without logit soft-capping, "
                             f"got {type(head).__name__}; use module.loss_impl=plain")
        return HeadInputs(out.hidden_states[-1], labels, head.weight, head.bias, self.loss_chunk_size)

    # --- the objective -------------------------------------------------------------------------------------------
    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """The training loss on ``logits (B, T, V)`` and unshifted ``labels (B, T)``, plus extra metrics."""
        raise NotImplementedError

    def chunked_objective(
        self, inputs: HeadInputs, num_items_in_batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """``objective`` on the chunked path: the same loss from hidden states and the head (``loss_impl=chunked``)."""
        raise NotImplementedError

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> StepResult:
        """One SFT-style step: forward, the objective, and the true CE and entropy for comparison."""
        labels, positions = batch["labels"], batch.get("position_ids")
        if positions is not None and not self.supports_packing:
            raise ValueError(f"{type(self).__name__} sums its loss per row, which a packed row (data.packing=true) "
                             "shares between documents; use data.packing=false")
        denominator = self.token_denominator(batch) if stage == "train" else None
        if self.loss_impl == "chunked":
            inputs = self.head_inputs(batch["input_ids"], batch["attention_mask"], labels, positions)
            loss, metrics = self.chunked_objective(inputs, denominator)
        else:
            logits = self(batch["input_ids"], batch["attention_mask"], positions)
            loss, metrics = self.objective(logits, labels, denominator)
        kept = num_label_tokens(labels).clamp(min=1)
        # The logged loss is always this micro-batch's token mean, whatever normalised the gradient.
        metrics["loss"] = loss.detach() * denominator / kept if denominator is not None else loss.detach()
        if self.loss_is_ce:
            metrics["ce"] = metrics["loss"]
        if stage != "train" or self.logs_this_step():
            with torch.no_grad():  # diagnostics cost a pass over (N, V): only on steps that are written out
                if self.loss_impl == "chunked":  # the same two numbers, chunk by chunk
                    h, targets = inputs.kept()
                    ce, metrics["entropy"] = chunked_ce_and_entropy(h.detach(), inputs.weight.detach(), targets,
                                                                    inputs.bias, self.loss_chunk_size)
                    metrics.setdefault("ce", ce.float())
                    metrics["entropy"] = metrics["entropy"].float()
                else:
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


def model_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 position_ids: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    """The backbone's keyword inputs. Packed rows (``position_ids`` given) go without the attention mask: Hugging Face
    models then attend within each document, which the positions delimit (``src/datamodules/packing.py``)."""
    if position_ids is not None:
        return {"input_ids": input_ids, "position_ids": position_ids}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def predictive_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distribution over positions with a kept label."""
    mask = shift_labels(labels) != IGNORE_INDEX  # (B, T)
    logp = torch.log_softmax(logits[mask].float(), dim=-1)  # (N, V)
    if logp.shape[0] == 0:
        return logits.new_zeros((), dtype=torch.float32)
    return -(logp.exp() * logp).sum(-1).mean()


def batch_size_of(batch: dict[str, torch.Tensor]) -> int:
    first = next(v for k, v in batch.items() if k.endswith("input_ids"))
    return first.shape[0]
