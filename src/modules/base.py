"""The shared base of every objective: backbone injection, the head path, optimizer and schedule, the step, and
metric logging.

An objective subclass lists the losses it computes (``losses``, :class:`src.losses.forms.LossForms`) and implements
one method, ``objective(out, num_items_in_batch)``, on what the head path returns (:mod:`src.losses.head_outputs`:
the logits, or the hidden states and the LM head), or overrides ``step`` (DPO). ``step`` returns a
:class:`StepResult`. The backbone is built in ``configure_model`` so sharding strategies can wrap it, and the head path
is picked there, once (``module.loss_impl``, :mod:`src.modules.head_path`).

``loss_impl="chunked"`` never builds the ``[B, T, V]`` logits: the losses' chunked forms read the last hidden state
and the LM head in chunks of ``loss_chunk_size`` tokens (``src/losses/chunked.py``). ``loss_impl="cce"|"liger"`` read
them through a fused CE kernel (``src/losses/fused_ce.py``): CE and CE-derived log-probs only. The ``loss_impl``
values a subclass accepts are those every one of its losses offers; any other setting is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities import rank_zero_info

from src.losses.forms import FUSED_IMPLS, HEAD_PATHS, LossForms, common_impls
from src.losses.head_outputs import HeadOutput
from src.losses.logprobs import num_label_tokens
from src.modules.head_path import HeadPath, head_path, model_inputs, plain_linear_head
from src.modules.sharding import ShardingSettings, shard_module, unsaved_parameters
from src.utils.checks import require, require_choice

LOSS_IMPLS = ("auto", *HEAD_PATHS)
# loss_impl=auto picks chunked from this vocabulary size on: in experiments/bench_losses.py --head (4k tokens) it was
# faster than plain and used a fraction of the memory at V = 32k and 128k, for every objective.
AUTO_CHUNKED_VOCAB = 32_000

Metrics = dict[str, torch.Tensor]


class StepResult(NamedTuple):
    """What one step hands its caller: the tensor to backpropagate, the tokens it averaged, and what to log."""

    loss: torch.Tensor  # the training loss, with its graph (scaled by the token denominator on train steps)
    tokens: torch.Tensor  # 0-d: the label tokens of this micro-batch (DPO: the chosen ones), the weight of its ``ce``
    metrics: Metrics  # detached values to log under ``{stage}/``; ``loss`` is this micro-batch's token mean


class NonFiniteLossError(FloatingPointError):
    """Raised before backward, so the weights and the last checkpoint are still good."""


class PostTrainModule(LightningModule):
    losses: tuple[LossForms, ...] = ()  # what ``objective`` computes; set on a subclass, it sets ``loss_impls``
    loss_impls: tuple[str, ...] = ("plain", "chunked")  # the head paths every loss in ``losses`` offers
    loss_is_ce = False  # True when the objective's value is the CE itself, so it is not computed twice
    supports_packing = True  # False where the loss sums per row (a packed row holds several documents)
    loss_per_token = True  # train/loss is a token mean (ranks weighted by tokens); False: a per-example mean
    skip_diagnostics = False  # True while a step only needs its loss (MAXRIGHT's probes)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "losses" in vars(cls) and "loss_impls" not in vars(cls):  # an explicit loss_impls narrows it further
            cls.loss_impls = common_impls(cls.losses)

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
    ):
        """``loss_impl``: plain (logits ``[B, T, V]``, then the loss), chunked (hidden states and the LM head,
        ``loss_chunk_size`` tokens at a time; the same values and gradients in far less memory), the fused CE
        kernels cce / liger (``src/losses/fused_ce.py``; CE-based objectives only), or auto (the default: chunked for
        vocabularies from 32k on, plain below; see :meth:`resolve_loss_impl`)."""
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        require_choice("module.loss_impl", loss_impl, LOSS_IMPLS)
        require(loss_chunk_size >= 1, "module.loss_chunk_size", loss_chunk_size, ">= 1 tokens")
        require(loss_impl == "auto" or loss_impl in self.loss_impls, "module.loss_impl", loss_impl,
                f"one of {list(self.loss_impls)}: {type(self).__name__} has no {loss_impl} loss"
                + self._missing_form(loss_impl))
        self.loss_impl, self.loss_chunk_size = loss_impl, loss_chunk_size
        self.model_factory, self.optimizer_factory, self.scheduler_factory = model, optimizer, scheduler
        self.model: torch.nn.Module | None = None
        self.head_path: HeadPath | None = None  # picked in configure_model, once the backbone says what auto means
        self._val_nll = [0.0, 0]  # (sum of token NLL, tokens) over the validation epoch

    def _missing_form(self, loss_impl: str) -> str:
        """Which of the objective's losses lacks the ``loss_impl`` form, for the refusal."""
        lacking = [f"{loss.name} offers {', '.join(loss.impls)}" for loss in self.losses if loss_impl not in loss.impls]
        kernels = ["cce and liger are CE-only kernels"] if loss_impl in FUSED_IMPLS else []
        return f" ({'; '.join(lacking + kernels)})" if lacking or kernels else ""

    # --- model ------------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build the backbone once (Lightning calls this inside the strategy's init context). Under
        ``ModelParallelStrategy`` (``trainer=fsdp2``, which sets ``device_mesh``) shard it with FSDP2 after
        ``on_model_built``, so derived state (a reference copy, a cost embedding) is taken from full weights."""
        if self.model is None:
            self.model = self.model_factory()
            self.loss_impl = self.resolve_loss_impl()
            self.head_path = head_path(self.loss_impl, self.loss_chunk_size)
            self.on_model_built()
            if self.device_mesh is not None:
                # Lightning's loader of full checkpoints under ModelParallelStrategy checks every parameter by name,
                # past load_state_dict's hooks: weights a module never saves (DPO's frozen copy, rebuilt and
                # fingerprint-checked on resume) would fail it, so those modules load non-strictly.
                self.strict_loading = not unsaved_parameters(self)
                settings = getattr(self.trainer.strategy, "sharding", None) or ShardingSettings()
                shard_module(self, self.device_mesh, settings)

    def resolve_loss_impl(self) -> str:
        """``loss_impl``, with ``auto`` made concrete for the built backbone: chunked where it is exact and measured
        better (a plain ``nn.Linear`` head without soft-capping, ``V >= AUTO_CHUNKED_VOCAB``, not under FSDP1, whose
        flattened parameters the head's weight is not), else plain."""
        if self.loss_impl != "auto":
            return self.loss_impl
        head = self.model.get_output_embeddings()
        eligible = (plain_linear_head(self.model) and head.weight.shape[0] >= AUTO_CHUNKED_VOCAB
                    and not (self._trainer is not None and isinstance(self.trainer.strategy, FSDPStrategy)))
        impl = "chunked" if eligible and "chunked" in self.loss_impls else "plain"
        rank_zero_info(f"module.loss_impl=auto: {impl} (vocabulary {head.weight.shape[0]}, head {type(head).__name__})")
        return impl

    def on_model_built(self) -> None:
        """Hook for objectives that derive state from the fresh backbone (a reference copy, a cost embedding)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(**model_inputs(input_ids, attention_mask, position_ids), use_cache=False).logits  # (B, T, V)

    # --- the objective -------------------------------------------------------------------------------------------
    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        """The training loss and extra metrics on what the head path returned: ``out.loss(FORMS, **hyperparameters)``
        for each loss in ``losses``, whichever ``module.loss_impl`` runs."""
        raise NotImplementedError

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> StepResult:
        """One SFT-style step: forward, the objective, and the true CE and entropy for comparison."""
        labels, positions = batch["labels"], batch.get("position_ids")
        if positions is not None and not self.supports_packing:
            raise ValueError(f"{type(self).__name__} sums its loss per row, which a packed row (data.packing=true) "
                             "shares between documents; use data.packing=false")
        denominator = self.token_denominator(batch) if stage == "train" else None
        out = self.head_path(self.model, batch["input_ids"], batch["attention_mask"], labels, positions)
        loss, metrics = self.objective(out, denominator)
        kept = num_label_tokens(labels).clamp(min=1)
        # The logged loss is always this micro-batch's token mean, whatever normalised the gradient.
        metrics["loss"] = loss.detach() * denominator / kept if denominator is not None else loss.detach()
        if self.loss_is_ce:
            metrics["ce"] = metrics["loss"]
        if self.logs_diagnostics(stage):
            # a pass over (N, V), only on steps that are written out; CE is not recomputed where the objective gave it
            for key, value in out.diagnostics(with_ce="ce" not in metrics).items():
                metrics.setdefault(key, value)
        return StepResult(loss, kept, metrics)

    def logs_diagnostics(self, stage: str) -> bool:
        """Whether a step computes its diagnostics (entropy, mean logits): every validation step and the train steps
        that are written out, never a step that only needs its loss (``skip_diagnostics``)."""
        return not self.skip_diagnostics and (stage != "train" or self.logs_this_step())

    def logs_this_step(self) -> bool:
        """Whether Lightning writes this training step's row, so its diagnostics are computed on exactly that step.

        Lightning writes a row when ``(steps done + 1) % log_every_n_steps == 0`` (``LoggerConnector.
        should_update_logs``, whose stepped-batch counter equals ``global_step`` under the automatic optimization with
        one optimizer that every module here uses) or when the loop is stopping, and on every step of a
        ``fast_dev_run``. The run's last step is stopped by ``FinalValidation`` only after it has run, so it counts
        here too."""
        if self._trainer is None:
            return True
        trainer = self.trainer
        step = trainer.global_step + 1  # the step being taken, counted as its row will be (StepNumbers)
        every = trainer.log_every_n_steps
        return (bool(trainer.fast_dev_run) or trainer.should_stop or 0 < trainer.max_steps <= step
                or (every > 0 and step % every == 0))

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

    def across_ranks(self, value: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The ``weight``-weighted mean of a 0-d ``value`` over all ranks: with token counts as weights, the token
        mean of the global micro-batch, so W ranks at batch b log what one process at W*b logs."""
        if self._trainer is None or self.trainer.world_size == 1:
            return value
        weight = weight.float()
        sums = self.trainer.strategy.reduce(torch.stack([value.float() * weight, weight]), reduce_op="sum")  # (2,)
        return sums[0] / sums[1].clamp(min=1e-12)

    # --- Lightning hooks -------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, tokens, metrics = self.step(batch, "train")
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite train/loss ({loss.item()}) at global step {self.global_step}, batch {batch_idx}; "
                "stopping before the update, so the last checkpoint holds good weights. Lower the learning rate, "
                "check the data, or use fp32/bf16 instead of fp16."
            )
        size = batch_size_of(batch)
        logged = self.across_ranks(metrics.pop("loss"), tokens if self.loss_per_token else torch.ones_like(tokens))
        self.log("train/loss", logged, prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in metrics.items()}, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        """Logs the batch's values; returns them (``val/ce`` weighted by its label tokens, the rest by examples) for
        callbacks such as ``callback=validation_examples``."""
        _, tokens, metrics = self.step(batch, "val")
        ce = metrics.pop("ce")
        self._val_nll[0] += float(ce) * int(tokens)  # token-weighted over the whole val set
        self._val_nll[1] += int(tokens)
        logged = {f"val/{k}": v for k, v in metrics.items()}
        self.log_dict(logged, on_epoch=True, sync_dist=True, batch_size=batch_size_of(batch))
        return {"val/ce": ce.detach(), "tokens": int(tokens), "weight": batch_size_of(batch),
                **{k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in logged.items()}}

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


def batch_size_of(batch: dict[str, torch.Tensor]) -> int:
    first = next(v for k, v in batch.items() if k.endswith("input_ids"))
    return first.shape[0]
