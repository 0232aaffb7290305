"""One model, two objectives: SFT (token-mean CE) and DPO, trained on the steps a schedule picks (XRIGHT).

Each optimizer step trains on a weight per objective, e.g. ``{"dpo": 1.0}`` (ALRIGHT/MAXRIGHT/sequential) or
``{"sft": 1 - lam, "dpo": lam}`` (Mix: both losses, one backward). The scheduler callback sets the weights with
``request``; the module adopts them only at the start of an accumulation window, so a window never mixes choices.
Without a callback every step trains ``default_objective``.

The train loader only yields placeholders; real batches come from the DataModule's per-objective
streams (``src.datamodules.interleave_streams``), so an objective's data advances only when it trains. The DPO step,
its settings and its reference's lifecycle are the functions of ``dpo_step.py`` that DPOModule calls too; the SFT
step is the base step with CE. Metric names: ``{stage}/sft_loss``, ``{stage}/dpo_loss``, DPO's ``rewards/*`` and
``logps/*``, ``val/ce``/``val/ppl`` (held-out SFT CE, token-weighted), ``data/{sft,dpo}_epochs`` (stream coverage).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from src.interleave.schedules import OBJECTIVES, Weights
from src.losses.ce import CE
from src.losses.head_outputs import HeadOutput
from src.losses.sequence_logps import SEQUENCE_LOGPS
from src.modules.base import Metrics, NonFiniteLossError, PostTrainModule, StepResult, batch_size_of
from src.modules.dpo_step import (
    DPOSettings,
    build_dpo_reference,
    dpo_step,
    load_reference_state,
    reference_logps,
    save_reference_state,
)
from src.modules.pairs import is_pair_batch
from src.modules.reference import Reference, prepare_for_trainer
from src.utils.checks import require_choice

Batch = dict[str, torch.Tensor]
PREFIXED = ("loss", "ce", "entropy")  # per-objective names; DPO's rewards/*, logps/*, logits/* are unique already


class InterleaveModule(PostTrainModule):
    losses = (CE, SEQUENCE_LOGPS)  # SFT is CE, DPO's log-probs CE-derived: cce too (not liger, for the DPO side)
    loss_is_ce = True  # the SFT objective is CE itself

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
        default_objective: str = "sft",
        beta: float = DPOSettings.beta,
        label_smoothing: float = DPOSettings.label_smoothing,
        loss_type: str = DPOSettings.loss_type,
        average_logps: bool = DPOSettings.average_logps,
        sft_weight: float = DPOSettings.sft_weight,
        reference: str = DPOSettings.reference,
        reference_cache_dir: str | None = DPOSettings.reference_cache_dir,
        simpo_gamma: float = DPOSettings.simpo_gamma,
    ):
        """The DPO arguments are DPOModule's, checked by :class:`DPOSettings` (``sft_weight`` adds the chosen CE to
        DPO steps)."""
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        require_choice("module.default_objective", default_objective, OBJECTIVES)
        self.settings = DPOSettings.from_hparams(self.hparams)
        self.reference: Reference | None = None
        self.requested: Weights = {default_objective: 1.0}
        self.window_weights: Weights = dict(self.requested)
        self.window_losses: dict[str, list[torch.Tensor]] = {}
        self._probe_reference: list[tuple[Batch, tuple[torch.Tensor | None, torch.Tensor | None]]] = []

    # --- the two objectives: SFT is the base step with CE, DPO is the shared DPO step ------------------------------
    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        return out.loss(CE, num_items_in_batch=num_items_in_batch), {}

    def step(self, batch: Batch, stage: str) -> StepResult:
        if is_pair_batch(batch):  # padded or packed (data.prefs.packing)
            return dpo_step(self, self.settings, self.reference, batch, stage)
        return super().step(batch, stage)

    def on_model_built(self) -> None:
        self.reference = build_dpo_reference(self.settings, self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_reference_state(self.reference, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_reference_state(self.reference, checkpoint)

    # --- the schedule's interface -----------------------------------------------------------------------------------
    def request(self, weights: Weights) -> None:
        """Train on ``weights`` from the next accumulation window on."""
        self.requested = dict(weights)

    def next_batch(self, objective: str) -> Batch:
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "next_batch"):
            raise TypeError(f"InterleaveModule trains from a multi-stream DataModule (data=interleave_*), got "
                            f"{type(datamodule).__name__}")
        return self.trainer.strategy.batch_to_device(datamodule.next_batch(objective))

    @torch.no_grad()
    def probe_losses(self, batches: dict[str, list[Batch]]) -> dict[str, torch.Tensor]:
        """Mean loss of each objective on held-out batches, in eval mode (MAXRIGHT's refresh; no update, no grad).

        Only the losses are computed (no diagnostics), and the reference log-probs of each probe batch are computed
        once per run: the batches and the reference never change, so every refresh reuses them (exact).
        """
        was_training = self.training
        self.eval()
        self.skip_diagnostics = True
        try:
            return {obj: torch.stack([self._probe_loss(b) for b in group]).mean() for obj, group in batches.items()}
        finally:
            self.skip_diagnostics = False
            self.train(was_training)

    def _probe_loss(self, batch: Batch) -> torch.Tensor:
        on_device = self.trainer.strategy.batch_to_device(batch)
        if not is_pair_batch(batch):
            return self.step(on_device, "val").loss
        # Keyed by the probe batch object itself (held, so its id is never reused by another batch).
        cached = next((logps for held, logps in self._probe_reference if held is batch), None)
        if cached is None:
            cached = reference_logps(self.reference, on_device, "val")
            self._probe_reference.append((batch, cached))
        return dpo_step(self, self.settings, FixedReference(*cached), on_device, "val").loss

    # --- Lightning hooks ---------------------------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """``batch`` is a placeholder; each objective in this window's weights pulls its own batch."""
        if batch_idx % self.trainer.accumulate_grad_batches == 0:  # a window starts: adopt the latest request
            self.window_weights, self.window_losses = dict(self.requested), {}
            forget_last_step_metrics(self.trainer)
        total = torch.zeros((), device=self.device)
        for objective, weight in self.window_weights.items():
            real = self.next_batch(objective)
            loss, _, metrics = self.step(real, "train")
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite train/{objective}_loss ({loss.item()}) at global step {self.global_step}; stopping "
                    "before the update, so the last checkpoint holds good weights")
            self.window_losses.setdefault(objective, []).append(metrics["loss"])
            self.log_dict({f"train/{k}": v for k, v in named(objective, metrics).items()}, on_step=True,
                          on_epoch=False, batch_size=batch_size_of(real))
            total = total + weight * loss
        # Each rank's total is already scaled to its share of the global token count (or is a pair mean over equal
        # shares), so the plain mean over ranks is the one-process value.
        self.log("train/loss", total.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=1,
                 sync_dist=True)
        coverage = self.trainer.datamodule.coverage()
        self.log_dict({f"data/{k}_epochs": v for k, v in coverage.items()}, on_step=True, on_epoch=False, batch_size=1)
        return total

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Logs the batch's values and returns them with their weight in the logged mean (``callback=
        validation_examples``)."""
        objective = "dpo" if is_pair_batch(batch) else "sft"
        result = self.step(batch, "val")
        tokens, metrics = int(result.tokens), result.metrics
        if objective == "sft":  # val/ce and val/ppl (base hooks) are the token-weighted held-out SFT CE
            self._val_nll[0] += float(metrics["ce"]) * tokens
            self._val_nll[1] += tokens
        # SFT means are token-weighted (batch_size=tokens), DPO means pair-weighted: exact over the whole set.
        size = tokens if objective == "sft" else batch_size_of(batch)
        logged = {f"val/{k}": v for k, v in named(objective, metrics).items()}
        self.log_dict(logged, on_epoch=True, sync_dist=True, batch_size=max(size, 1), add_dataloader_idx=False)
        return {"objective": objective, "weight": size,
                **{k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in logged.items()}}

    def on_fit_start(self) -> None:
        self._prepare_reference()

    def on_validation_start(self) -> None:
        self._prepare_reference()

    def _prepare_reference(self) -> None:
        """A precomputed reference table needs the preference data: point DPO's preparation at the prefs stream."""
        datamodule = getattr(self.trainer, "datamodule", None)
        sources = getattr(datamodule, "sources", None)
        if self.reference is None or sources is None:
            return
        view = SimpleNamespace(datamodule=sources["dpo"], precision=self.trainer.precision,
                               precision_plugin=self.trainer.precision_plugin)
        prepare_for_trainer(self.reference, self.model, view)


class FixedReference:
    """A reference that answers with log-probs computed earlier (a probe batch's): ``(chosen [B], rejected [B])``."""

    def __init__(self, chosen: torch.Tensor | None, rejected: torch.Tensor | None):
        self.chosen, self.rejected = chosen, rejected

    def logps(self, batch: Batch, split: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.chosen, self.rejected


def forget_last_step_metrics(trainer: Any) -> None:
    """Drop the values ``training_step`` logged in earlier steps, so a step's row holds only what that step logged.

    Lightning writes every metric logged so far this epoch into each step's row, with its last value: a DPO step's
    row would repeat the previous SFT step's ``train/sft_loss`` as if it were measured then, and a resumed run (whose
    record starts empty) would log a different history than the uninterrupted one. Every metric ``training_step``
    logs is on_step only, so nothing accumulates across steps. Lightning has no public call for this (2.6: the
    loop's ``_ResultCollection``; ``metrics=False`` resets the plain tensors, the only kind logged here).
    """
    results = getattr(trainer, "_results", None)
    if results is not None:
        results.reset(metrics=False, fx="training_step")


def named(objective: str, metrics: Metrics) -> Metrics:
    """``loss``/``ce``/``entropy`` become ``{objective}_loss`` ...; SFT's ``ce`` duplicates its loss and is dropped."""
    out = {}
    for key, value in metrics.items():
        if key == "ce" and objective == "sft":
            continue
        out[f"{objective}_{key}" if key in PREFIXED else key] = value
    return out
