"""Pairwise preference losses on sequence log-probs: DPO, cDPO, IPO, hinge (SLiC/RSO) and SimPO.

Everything here takes ``[B]`` sequence log-probs (from :func:`src.losses.logprobs.sequence_logps`, after
:func:`~src.losses.logprobs.split_pairs`) and never sees a model. Whether those log-probs are summed or averaged over
the response tokens is the caller's choice (``sequence_logps(average=...)``); the formulas below do not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "simpo")


def _check_args(beta: float, label_smoothing: float, loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    # cDPO assumes each label is flipped with probability eps. At eps = 0.5 the loss is symmetric in z (no preference
    # signal, minimum at z = 0); above 0.5 it trains towards the *rejected* answer. So only [0, 0.5) is meaningful.
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if label_smoothing and loss_type in ("ipo", "hinge"):
        raise ValueError(f"label_smoothing applies to 'sigmoid' and 'simpo' only, not loss_type={loss_type!r}")


def _check_shapes(policy_chosen_logps: torch.Tensor, **others: torch.Tensor | None) -> None:
    """Every given tensor must have the shape of ``policy_chosen_logps``; the error names the first that does not."""
    expected = tuple(policy_chosen_logps.shape)
    for name, x in others.items():
        if x is not None and tuple(x.shape) != expected:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {expected} like policy_chosen_logps")


def _smoothed_logistic(x: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """``-(1-eps) log sigma(x) - eps log sigma(-x)``; ``logsigmoid`` is exact for any |x| (no exp overflow)."""
    losses = -F.logsigmoid(x)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-x)
    return losses


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor | None,
    reference_rejected_logps: torch.Tensor | None,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    loss_type: str = "sigmoid",
    *,
    simpo_gamma: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example preference loss and detached implicit rewards: ``[B] x 4 -> (losses, chosen_r, rejected_r)``.

    Notation: ``pi_c, pi_r`` policy and ``ref_c, ref_r`` reference log-probs of the chosen/rejected responses,
    ``z = (pi_c - pi_r) - (ref_c - ref_r)``, ``eps = label_smoothing``.

    - ``"sigmoid"``: DPO, Rafailov et al. 2023 (arXiv 2305.18290) eq. 7, ``-log sigma(beta z)``. With ``eps > 0``
      it is conservative DPO (cDPO, Mitchell 2023, "A note on DPO with noisy preferences", eq. 3):
      ``-(1-eps) log sigma(beta z) - eps log sigma(-beta z)``. Matches XRIGHT's ``DPOLoss`` (``models/loss.py``,
      inherited from OpenRLHF), TRL ``loss_type="sigmoid"`` and torchtune ``DPOLoss``.
    - ``"ipo"``: IPO, Azar et al. 2023 (arXiv 2310.12036) eq. 17, ``(z - 1/(2 beta))^2``, exactly XRIGHT's
      ``DPOLoss(ipo=True)`` formula, evaluated on whatever log-probs are passed. XRIGHT passes *summed* log-probs
      (``sequence_logps(average=False)``); the paper's and TRL's length-normalised form is obtained by passing *mean*
      log-probs (``sequence_logps(average=True)``), which the DPO module exposes as an option.
    - ``"hinge"``: ``relu(1 - beta z)``, the SLiC-HF rank-calibration loss ``max(0, delta - log-ratio)`` (Zhao et al.
      2023, arXiv 2305.10425) with margin ``delta = 1``, on reference-normalised log-ratios, i.e. RSO's "hinge-norm"
      loss (Liu et al. 2023, arXiv 2309.06657).
      Matches TRL ``loss_type="hinge"`` (and torchtune ``RSOLoss`` with ``gamma = beta``).
    - ``"simpo"``: SimPO, Meng et al. 2024 (arXiv 2405.14734) eq. 6, reference-free:
      ``-log sigma(beta (pi_c - pi_r) - gamma)`` with ``gamma = simpo_gamma``, smoothed like cDPO when ``eps > 0``.
      The inputs are expected to be length-averaged (``sequence_logps(average=True)``). Reference arguments may be
      ``None`` and are ignored if given; rewards are ``beta * pi`` (SimPO's implicit reward, eq. 4). Matches TRL
      ``CPOTrainer(loss_type="simpo")``, torchtune ``SimPOLoss`` and the official princeton-nlp/SimPO trainer (their
      ``gamma_beta_ratio * beta = gamma``).

    Reduction: none. ``losses`` is ``[B]``; the caller takes the mean (XRIGHT, TRL, torchtune all do).
    Rewards: ``beta * (pi - ref)`` per response (``beta * pi`` for SimPO), detached, returned for every loss type.
    Raises ``ValueError`` naming the bad parameter: ``beta <= 0``, ``label_smoothing`` outside ``[0, 0.5)`` or used
    with ipo/hinge, unknown ``loss_type``, mismatched shapes, or missing references for a reference-based loss.
    """
    _check_args(beta, label_smoothing, loss_type)
    refs = (reference_chosen_logps, reference_rejected_logps)
    if loss_type != "simpo" and any(r is None for r in refs):
        raise ValueError(
            f"reference_chosen_logps and reference_rejected_logps are required for loss_type={loss_type!r}"
        )
    if (refs[0] is None) != (refs[1] is None):
        raise ValueError("reference_chosen_logps and reference_rejected_logps must both be given or both be None")
    _check_shapes(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )

    if loss_type == "simpo":
        pi_logratios = policy_chosen_logps - policy_rejected_logps  # (B,)
        losses = _smoothed_logistic(beta * pi_logratios - simpo_gamma, label_smoothing)
        return losses, beta * policy_chosen_logps.detach(), beta * policy_rejected_logps.detach()

    # Same association as XRIGHT/TRL, so z is exactly 0 when policy == reference.
    z = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)  # (B,)
    if loss_type == "sigmoid":
        losses = _smoothed_logistic(beta * z, label_smoothing)
    elif loss_type == "ipo":
        losses = (z - 1 / (2 * beta)) ** 2
    else:  # hinge
        losses = torch.relu(1 - beta * z)

    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


def preference_metrics(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Batch means under TRL's metric names, all detached 0-d tensors.

    ``rewards/accuracies`` is the fraction of pairs with ``chosen_reward > rejected_reward`` (ties count as wrong,
    as in XRIGHT and TRL).
    """
    chosen_rewards, rejected_rewards = chosen_rewards.detach().float(), rejected_rewards.detach().float()
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "logps/chosen": policy_chosen_logps.detach().float().mean(),
        "logps/rejected": policy_rejected_logps.detach().float().mean(),
    }
