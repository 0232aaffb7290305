"""Direct preference optimisation and its relatives (cDPO, IPO, hinge/SLiC, SimPO) on pair batches.

The step, its settings and the reference's lifecycle live in ``dpo_step.py``, shared with InterleaveModule; this
module only declares the hyperparameters and wires them to the Lightning hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from src.losses.sequence_logps import SEQUENCE_LOGPS
from src.modules.base import PostTrainModule, StepResult
from src.modules.dpo_step import (
    DPOSettings,
    build_dpo_reference,
    dpo_step,
    load_reference_state,
    save_reference_state,
)
from src.modules.reference import Reference, prepare_for_trainer


class DPOModule(PostTrainModule):
    loss_per_token = False  # train/loss is a mean over pairs
    losses = (SEQUENCE_LOGPS,)  # CE-derived: the cce kernel too (not liger, see SEQUENCE_LOGPS)

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
        beta: float = DPOSettings.beta,
        label_smoothing: float = DPOSettings.label_smoothing,
        loss_type: str = DPOSettings.loss_type,
        average_logps: bool = DPOSettings.average_logps,
        sft_weight: float = DPOSettings.sft_weight,
        reference: str = DPOSettings.reference,
        reference_cache_dir: str | None = DPOSettings.reference_cache_dir,
        simpo_gamma: float = DPOSettings.simpo_gamma,
    ):
        """The DPO arguments are documented, checked and defaulted by :class:`DPOSettings`."""
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        self.settings = DPOSettings.from_hparams(self.hparams)
        self.reference: Reference | None = None

    def on_model_built(self) -> None:
        self.reference = build_dpo_reference(self.settings, self)

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> StepResult:
        return dpo_step(self, self.settings, self.reference, batch, stage)

    # --- the reference's lifecycle: precompute before the first step, carry its state in checkpoints ----------------
    def on_fit_start(self) -> None:
        prepare_for_trainer(self.reference, self.model, self.trainer)

    def on_validation_start(self) -> None:
        prepare_for_trainer(self.reference, self.model, self.trainer)  # trainer.validate() before fit needs it too

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_reference_state(self.reference, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_reference_state(self.reference, checkpoint)
