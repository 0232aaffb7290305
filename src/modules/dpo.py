"""Direct preference optimisation and its relatives (cDPO, IPO, hinge/SLiC, SimPO) on pair batches.

One policy forward covers the concatenated ``[chosen; rejected]`` batch (XRIGHT/TRL's ``concatenated_forward``); the
reference log-probs come from a strategy in ``reference.py``; the formulas live in :func:`src.losses.dpo.dpo_loss`.
Metrics use TRL's names under the stage prefix (``train/rewards/margins``, ``val/logps/chosen`` ...). ``ce`` is the
token-mean NLL of the *chosen* responses, so ``val/ce`` and ``val/ppl`` say whether the policy still models the
preferred answers; ``sft_weight > 0`` adds that term to the loss, the DPO + NLL objective of Pang et al. 2024
(arXiv 2404.19733; TRL's ``rpo_alpha``), here a token mean over the accumulation window's chosen tokens.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from src.losses.dpo import LOSS_TYPES, dpo_loss, preference_metrics
from src.losses.logprobs import IGNORE_INDEX, sequence_logps, split_pairs
from src.modules.base import Metrics, PostTrainModule
from src.modules.reference import KINDS, Reference, build_reference, pair_inputs, prepare_for_trainer
from src.utils.checks import require, require_choice


class DPOModule(PostTrainModule):
    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        loss_type: str = "sigmoid",
        average_logps: bool = False,
        sft_weight: float = 0.0,
        reference: str = "copy",
        reference_cache_dir: str | None = None,
        simpo_gamma: float = 0.5,
    ):
        """``average_logps``: mean instead of summed response log-probs (the length-normalised IPO of the paper and
        TRL, and SimPO). ``reference``: copy | adapter (LoRA policies) | precomputed | none (SimPO only)."""
        super().__init__(model, optimizer, scheduler)
        require_choice("module.loss_type", loss_type, LOSS_TYPES)
        require_choice("module.reference", reference, KINDS)
        require(beta > 0, "module.beta", beta, "> 0")
        require(0.0 <= label_smoothing < 0.5, "module.label_smoothing", label_smoothing, "in [0, 0.5)")
        require(not label_smoothing or loss_type in ("sigmoid", "simpo"), "module.label_smoothing", label_smoothing,
                f"0 with loss_type={loss_type!r} (label smoothing is defined for sigmoid and simpo)")
        require(sft_weight >= 0, "module.sft_weight", sft_weight, ">= 0")
        if loss_type == "simpo":
            require(reference == "none", "module.reference", reference,
                    "'none' with loss_type='simpo' (SimPO is reference-free)")
        else:
            require(reference != "none", "module.reference", reference,
                    f"copy, adapter or precomputed: loss_type={loss_type!r} needs reference log-probs")
        self.reference: Reference | None = None

    def on_model_built(self) -> None:
        h = self.hparams
        self.reference = build_reference(h.reference, self.model, h.average_logps, h.reference_cache_dir)

    def reference_logps(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor | None, ...]:
        """``(chosen [B], rejected [B])`` reference log-probs, ``(None, None)`` for reference-free losses."""
        return self.reference.logps(batch, stage) if self.reference is not None else (None, None)

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> Metrics:
        h = self.hparams
        input_ids, attention_mask, labels = pair_inputs(batch)  # (2B, T) each
        logits = self(input_ids, attention_mask)  # (2B, T, V)
        sums = sequence_logps(logits, labels)  # (2B,) summed response log-probs
        counts = (labels[:, 1:] != IGNORE_INDEX).sum(-1)  # (2B,) response tokens the shifted loss sees
        policy_c, policy_r = split_pairs(sums / counts.clamp(min=1) if h.average_logps else sums)
        ref_c, ref_r = self.reference_logps(batch, stage)
        losses, reward_c, reward_r = dpo_loss(policy_c, policy_r, ref_c, ref_r, h.beta, h.label_smoothing,
                                              h.loss_type, simpo_gamma=h.simpo_gamma)
        loss = losses.mean()  # (B,) -> scalar: the per-pair mean of XRIGHT, TRL and torchtune

        # CE of the chosen responses from the same forward: -sum log p / N_chosen (the SFT loss on the chosen side).
        chosen_sum, chosen_tokens = split_pairs(sums)[0].sum(), split_pairs(counts)[0].sum().clamp(min=1)
        ce = -chosen_sum / chosen_tokens
        if h.sft_weight:
            denominator = self.token_denominator(batch) if stage == "train" else None  # exact under accumulation
            loss = loss + h.sft_weight * (-chosen_sum / denominator if denominator is not None else ce)

        metrics = preference_metrics(reward_c, reward_r, policy_c, policy_r)
        if stage != "train" or self.logs_this_step():
            metrics.update(mean_response_logits(logits.detach(), labels))
        metrics["loss"] = loss.detach()
        metrics["ce"] = ce.detach()
        metrics["_backward"] = loss
        metrics["_tokens"] = chosen_tokens
        return metrics

    # --- the reference's lifecycle: precompute before the first step, carry its state in checkpoints ----------------
    def on_fit_start(self) -> None:
        prepare_for_trainer(self.reference, self.model, self.trainer)

    def on_validation_start(self) -> None:
        prepare_for_trainer(self.reference, self.model, self.trainer)  # trainer.validate() before fit needs it too

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.reference is not None:
            checkpoint["reference"] = self.reference.checkpoint_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.reference is not None and "reference" in checkpoint:
            self.reference.load_checkpoint_state(checkpoint["reference"])


@torch.no_grad()
def mean_response_logits(logits: torch.Tensor, labels: torch.Tensor) -> Metrics:
    """TRL's ``logits/chosen`` and ``logits/rejected``: the mean raw logit over response positions and the vocab."""
    mask = labels[:, 1:] != IGNORE_INDEX  # (2B, T-1)
    per_position = logits[:, :-1].float().mean(-1)  # (2B, T-1)
    (mask_c, mask_r), (pos_c, pos_r) = split_pairs(mask), split_pairs(per_position)
    return {"logits/chosen": pos_c[mask_c].sum() / mask_c.sum().clamp(min=1),
            "logits/rejected": pos_r[mask_r].sum() / mask_r.sum().clamp(min=1)}
