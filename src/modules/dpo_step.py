"""The DPO step, shared by DPOModule and InterleaveModule: its settings, the step, and the reference's lifecycle.

One policy forward covers the concatenated ``[chosen; rejected]`` batch (XRIGHT/TRL's ``concatenated_forward``), or,
with ``data.packing=true``, the same sequences packed into rows without padding between them (``pairs.py``); the
reference log-probs come from a strategy in ``reference.py``; the formulas live in :func:`src.losses.dpo.dpo_loss`.
Metrics use TRL's names (``rewards/margins``, ``logps/chosen`` ...). ``ce`` is the token-mean NLL of the *chosen*
responses, so ``val/ce`` and ``val/ppl`` say whether the policy still models the preferred answers; ``sft_weight > 0``
adds that term to the loss, the DPO + NLL objective of Pang et al. 2024 (arXiv 2404.19733; TRL's ``rpo_alpha``), here
a token mean over the accumulation window's chosen tokens.

A module composes these: it holds a :class:`DPOSettings` and a reference, calls :func:`dpo_step` from its ``step``,
:func:`build_dpo_reference` once its backbone exists, and the ``*_reference_state`` functions from its checkpoint
hooks (``prepare_for_trainer`` from ``reference.py`` fills a precomputed table before the first step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from src.losses.dpo import LOSS_TYPES, dpo_loss, preference_metrics
from src.losses.logprobs import IGNORE_INDEX, split_pairs
from src.modules.base import Metrics, PostTrainModule, StepResult
from src.modules.pairs import PairBatch, pair_batch
from src.modules.reference import KINDS, Reference, build_reference
from src.utils.checks import require, require_choice

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DPOSettings:
    """The DPO hyperparameters (``module.*``), checked together; the defaults of every DPO module's signature.

    ``average_logps``: mean instead of summed response log-probs (the length-normalised IPO of the paper and TRL, and
    SimPO). ``reference``: copy | adapter (LoRA policies) | precomputed | none (SimPO only).
    """

    beta: float = 0.1
    label_smoothing: float = 0.0
    loss_type: str = "sigmoid"
    average_logps: bool = False
    sft_weight: float = 0.0
    reference: str = "copy"
    reference_cache_dir: str | None = None
    simpo_gamma: float = 0.5

    def __post_init__(self) -> None:
        require_choice("module.loss_type", self.loss_type, LOSS_TYPES)
        require_choice("module.reference", self.reference, KINDS)
        require(self.beta > 0, "module.beta", self.beta, "> 0")
        require(0.0 <= self.label_smoothing < 0.5, "module.label_smoothing", self.label_smoothing, "in [0, 0.5)")
        require(not self.label_smoothing or self.loss_type in ("sigmoid", "simpo"), "module.label_smoothing",
                self.label_smoothing,
                f"0 with loss_type={self.loss_type!r} (label smoothing is defined for sigmoid and simpo)")
        require(self.sft_weight >= 0, "module.sft_weight", self.sft_weight, ">= 0")
        if self.loss_type == "simpo":
            require(self.reference == "none", "module.reference", self.reference,
                    "'none' with loss_type='simpo' (SimPO is reference-free)")
        else:
            require(self.reference != "none", "module.reference", self.reference,
                    f"copy, adapter or precomputed: loss_type={self.loss_type!r} needs reference log-probs")

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> DPOSettings:
        """The DPO keys of a module's ``hparams``; its other keys (``default_objective`` ...) are not DPO's."""
        return cls(**{f.name: hparams[f.name] for f in fields(cls)})


def dpo_step(module: PostTrainModule, settings: DPOSettings, reference: Reference | None, batch: Batch,
             stage: str) -> StepResult:
    """One step on a pair batch. ``module`` gives the policy forward, the token denominator and the logging cadence;
    ``reference`` gives the reference log-probs (``None`` for the reference-free SimPO)."""
    s = settings
    pairs = policy_pairs(module, batch)  # (2B, T) padded rows, or (R, L) packed rows
    out = pairs.run(module.model, module.head_path)  # logits (2B, T, V) or (R, L, V), or hidden states and the head
    sums = pairs.logps(out)  # (2B,) summed response log-probs
    counts = pairs.label_counts()  # (2B,) response tokens the shifted loss sees
    policy_c, policy_r = split_pairs(sums / counts.clamp(min=1) if s.average_logps else sums)
    ref_c, ref_r = reference_logps(reference, batch, stage)
    losses, reward_c, reward_r = dpo_loss(policy_c, policy_r, ref_c, ref_r, s.beta, s.label_smoothing, s.loss_type,
                                          simpo_gamma=s.simpo_gamma)
    loss = losses.mean()  # (B,) -> scalar: the per-pair mean of XRIGHT, TRL and torchtune

    # CE of the chosen responses from the same forward: -sum log p / N_chosen (the SFT loss on the chosen side).
    chosen_sum, chosen_tokens = split_pairs(sums)[0].sum(), split_pairs(counts)[0].sum().clamp(min=1)
    ce = -chosen_sum / chosen_tokens
    if s.sft_weight:
        denominator = module.token_denominator(batch) if stage == "train" else None  # exact under accumulation
        loss = loss + s.sft_weight * (-chosen_sum / denominator if denominator is not None else ce)

    metrics = preference_metrics(reward_c, reward_r, policy_c, policy_r)
    if module.logs_diagnostics(stage):
        metrics.update(mean_response_logits(out.mean_logit(), pairs))  # (2B, T-1) or (R, L-1) per position
    metrics["loss"] = loss.detach()
    metrics["ce"] = ce.detach()
    return StepResult(loss, chosen_tokens, metrics)


def policy_pairs(module: PostTrainModule, batch: Batch) -> PairBatch:
    """The policy's inputs for a pair batch; a packed one (``data.packing=true``) only for a module whose every
    per-sequence sum goes through the batch's sequence ids (``supports_packing``)."""
    pairs = pair_batch(batch)
    if pairs.packed and not module.supports_packing:
        raise ValueError(f"{type(module).__name__} sums per row, which a packed pair batch (data.packing=true) "
                         "shares between sequences; use data.packing=false")
    return pairs


def reference_logps(reference: Reference | None, batch: Batch, stage: str) -> tuple[torch.Tensor | None, ...]:
    """``(chosen [B], rejected [B])`` reference log-probs, ``(None, None)`` for reference-free losses."""
    return reference.logps(batch, stage) if reference is not None else (None, None)


@torch.no_grad()
def mean_response_logits(per_position: torch.Tensor, pairs: PairBatch) -> Metrics:
    """TRL's ``logits/chosen`` and ``logits/rejected``: the mean raw logit over response positions and the vocab.

    ``per_position [2B, T-1]`` (``[R, L-1]`` packed) is each position's logit averaged over the vocabulary.
    """
    mask = pairs.labels[:, 1:] != IGNORE_INDEX  # (2B, T-1) or (R, L-1)
    sums = pairs.sum_per_sequence(per_position.masked_fill(~mask, 0.0))  # (2B,)
    (sum_c, sum_r), (count_c, count_r) = split_pairs(sums), split_pairs(pairs.label_counts())
    return {"logits/chosen": sum_c.sum() / count_c.sum().clamp(min=1),
            "logits/rejected": sum_r.sum() / count_r.sum().clamp(min=1)}


# --- the reference's lifecycle: built from the fresh backbone, its state carried in checkpoints ----------------------
def build_dpo_reference(settings: DPOSettings, module: PostTrainModule) -> Reference | None:
    """The reference ``settings`` ask for, built from ``module.model`` before its first update (``on_model_built``);
    its log-probs go through the policy's head path (the hidden states and the head under
    ``module.loss_impl=chunked|cce|liger``)."""
    return build_reference(settings.reference, module.model, settings.average_logps, settings.reference_cache_dir,
                           module.head_path.for_reference())


def save_reference_state(reference: Reference | None, checkpoint: dict[str, Any]) -> None:
    """``on_save_checkpoint``: the reference's fingerprint or table (never a second copy of the weights)."""
    if reference is not None:
        checkpoint["reference"] = reference.checkpoint_state()


def load_reference_state(reference: Reference | None, checkpoint: dict[str, Any]) -> None:
    """``on_load_checkpoint``: check a rebuilt copy against the checkpoint, or take the precomputed table back."""
    if reference is not None and "reference" in checkpoint:
        reference.load_checkpoint_state(checkpoint["reference"])
