"""Preference losses against hand-computed values, limit identities and huge margins.

Hand arithmetic uses softplus(x) = log(1 + e^x) = -log sigma(-x) and the identity softplus(x) = x + softplus(-x).
With s = softplus(-1) = log(1 + e^-1) = 0.3132617: -log sigma(1) = s and -log sigma(-1) = 1 + s.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from src.losses.dpo import dpo_loss, preference_metrics
from src.losses.logprobs import concat_pairs, sequence_logps, split_pairs

S1 = math.log1p(math.exp(-1.0))  # softplus(-1) = 0.3132617
LN2 = math.log(2.0)


def t(*xs: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32, requires_grad=grad)


def pairs_with_margin(*zs: float, grad: bool = False):
    """Log-probs whose DPO margin is exactly z: pi_c = z - 3, pi_r = -3, references both -7 (all exact in fp32)."""
    pi_c = t(*[z - 3.0 for z in zs], grad=grad)
    pi_r = t(*[-3.0] * len(zs), grad=grad)
    ref = t(*[-7.0] * len(zs))
    return pi_c, pi_r, ref, ref.clone()


# --- limit identity: policy == reference -------------------------------------------------------------------------


def test_policy_equals_reference_gives_ln2_and_half_beta_gradient():
    beta, B = 0.1, 4
    logps = torch.randn(2, B) * 30
    pi_c = logps[0].clone().requires_grad_()
    pi_r = logps[1].clone().requires_grad_()
    losses, _, _ = dpo_loss(pi_c, pi_r, logps[0], logps[1], beta=beta)
    # z = 0 exactly, so every loss is -log sigma(0) = ln 2.
    assert torch.equal(losses, torch.full((B,), LN2))
    losses.mean().backward()
    # d/d pi_c [-log sigma(beta z)] = -beta * sigma(-beta z) = -beta/2 at z = 0; d/d pi_r = +beta/2.
    # The batch mean divides each example's gradient by B: -0.1 / 2 / 4 = -0.0125.
    torch.testing.assert_close(pi_c.grad, torch.full((B,), -beta / 2 / B), rtol=0, atol=1e-8)
    torch.testing.assert_close(pi_r.grad, torch.full((B,), beta / 2 / B), rtol=0, atol=1e-8)


def test_policy_equals_reference_from_logits_gives_ln2():
    """End to end through the shared helper: identical policy/reference logits on a [chosen; rejected] batch."""
    torch.manual_seed(0)
    labels = concat_pairs(torch.randint(0, 11, (3, 6)), torch.randint(0, 11, (3, 6)))  # (2B, T)
    labels[:, :2] = -100  # prompt
    logits = torch.randn(6, 6, 11)  # (2B, T, V)
    pi_c, pi_r = split_pairs(sequence_logps(logits, labels))
    ref_c, ref_r = split_pairs(sequence_logps(logits.clone(), labels))
    losses, _, _ = dpo_loss(pi_c, pi_r, ref_c, ref_r)
    assert torch.equal(losses, torch.full((3,), LN2))


# --- hand-computed values ----------------------------------------------------------------------------------------


def test_sigmoid_hand_values():
    # beta = 0.5, z = (2, -2, 0) -> beta z = (1, -1, 0) -> losses (s, 1 + s, ln 2).
    losses, _, _ = dpo_loss(*pairs_with_margin(2.0, -2.0, 0.0), beta=0.5)
    torch.testing.assert_close(losses, t(S1, 1.0 + S1, LN2))


def test_cdpo_hand_values_and_soft_label_bce():
    # eps = 0.1: (1-eps) softplus(-x) + eps softplus(x) = softplus(-x) + eps x.
    # x = beta z = (1, -1, 0) -> (s + 0.1, 1 + s - 0.1, ln 2).
    args = pairs_with_margin(2.0, -2.0, 0.0)
    losses, _, _ = dpo_loss(*args, beta=0.5, label_smoothing=0.1)
    torch.testing.assert_close(losses, t(S1 + 0.1, 0.9 + S1, LN2))
    # Plain path: cDPO is binary cross-entropy on logit beta z with soft target 1 - eps.
    bce = F.binary_cross_entropy_with_logits(t(1.0, -1.0, 0.0), torch.full((3,), 0.9), reduction="none")
    torch.testing.assert_close(losses, bce)


def test_hinge_hand_values():
    # beta = 0.5, z = (2, -2, 1, 0.5) -> relu(1 - beta z) = (0, 2, 0.5, 0.75).
    losses, _, _ = dpo_loss(*pairs_with_margin(2.0, -2.0, 1.0, 0.5), beta=0.5, loss_type="hinge")
    torch.testing.assert_close(losses, t(0.0, 2.0, 0.5, 0.75))


def test_simpo_hand_values_reference_free():
    # beta = 2, gamma = 0.5, mean log-probs: beta (pi_c - pi_r) - gamma =
    #   2 * ( 0.5) - 0.5 =  0.5 -> softplus(-0.5) = log(1 + e^-0.5)
    #   2 * (-1.0) - 0.5 = -2.5 -> softplus(2.5)  = log(1 + e^2.5)
    #   2 * (0.25) - 0.5 =  0   -> ln 2
    pi_c, pi_r = t(-1.0, -2.0, -1.0), t(-1.5, -1.0, -1.25)
    losses, chosen_r, rejected_r = dpo_loss(pi_c, pi_r, None, None, beta=2.0, loss_type="simpo", simpo_gamma=0.5)
    torch.testing.assert_close(losses, t(math.log1p(math.exp(-0.5)), math.log1p(math.exp(2.5)), LN2))
    # SimPO's implicit reward is beta * (mean) log-prob, no reference.
    torch.testing.assert_close(chosen_r, t(-2.0, -4.0, -2.0))
    torch.testing.assert_close(rejected_r, t(-3.0, -2.0, -2.5))
    # Label smoothing as in cDPO: x = 0.5, eps = 0.2 -> softplus(-0.5) + 0.2 * 0.5.
    smoothed, _, _ = dpo_loss(t(-1.0), t(-1.5), None, None, beta=2.0, label_smoothing=0.2, loss_type="simpo")
    torch.testing.assert_close(smoothed, t(math.log1p(math.exp(-0.5)) + 0.1))


def test_ipo_closed_form_value_and_gradient():
    # beta = 0.5 -> target margin 1/(2 beta) = 1. z = (3, -1, 1) -> (z - 1)^2 = (4, 4, 0),
    # d/d pi_c = 2(z - 1) = (4, -4, 0) and d/d pi_r = -2(z - 1).
    pi_c, pi_r, ref_c, ref_r = pairs_with_margin(3.0, -1.0, 1.0, grad=True)
    losses, _, _ = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.5, loss_type="ipo")
    torch.testing.assert_close(losses, t(4.0, 4.0, 0.0))
    losses.sum().backward()  # sum keeps per-example gradients unscaled
    torch.testing.assert_close(pi_c.grad, t(4.0, -4.0, 0.0))
    torch.testing.assert_close(pi_r.grad, t(-4.0, 4.0, 0.0))


# --- numerical stability -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss_type", "label_smoothing"),
    [("sigmoid", 0.0), ("sigmoid", 0.1), ("ipo", 0.0), ("hinge", 0.0), ("simpo", 0.0), ("simpo", 0.1)],
)
def test_huge_margins_give_finite_loss_and_gradient(loss_type, label_smoothing):
    pi_c, pi_r, ref_c, ref_r = pairs_with_margin(1e4, -1e4, 1e6, -1e6, grad=True)
    losses, _, _ = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1, label_smoothing=label_smoothing, loss_type=loss_type)
    losses.sum().backward()
    assert torch.isfinite(losses).all()
    assert torch.isfinite(pi_c.grad).all() and torch.isfinite(pi_r.grad).all()


def test_huge_margins_sigmoid_values():
    # beta |z| = 1e3 and 1e5: e^{1e3} overflows fp32, logsigmoid does not.
    pi_c, pi_r, ref_c, ref_r = pairs_with_margin(1e4, -1e4, 1e6, -1e6, grad=True)
    losses, _, _ = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1)
    # Right side of a huge margin: loss softplus(-1e3) ~ 0; wrong side: softplus(beta|z|) ~ beta|z|.
    torch.testing.assert_close(losses, t(0.0, 1e3, 0.0, 1e5))
    losses.sum().backward()
    # Gradient -beta sigma(-beta z): 0 when right, saturates at -beta when wrong.
    torch.testing.assert_close(pi_c.grad, t(0.0, -0.1, 0.0, -0.1))
    # cDPO, eps = 0.1: softplus(-x) + eps x with x = beta z = (1e3, -1e3, 1e5, -1e5) -> (100, 900, 1e4, 9e4).
    smoothed, _, _ = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1, label_smoothing=0.1)
    torch.testing.assert_close(smoothed, t(100.0, 900.0, 1e4, 9e4))


# --- rewards and metrics -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_rewards_are_detached_beta_log_ratios(loss_type):
    pi_c, pi_r = t(-1.0, -4.0, grad=True), t(-2.0, -3.0, grad=True)
    ref_c, ref_r = t(-1.5, -3.0), t(-1.0, -3.5)
    losses, chosen_r, rejected_r = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.2, loss_type=loss_type)
    assert losses.requires_grad
    assert not chosen_r.requires_grad and not rejected_r.requires_grad
    # beta (pi - ref) = 0.2 * (0.5, -1.0) and 0.2 * (-1.0, 0.5).
    torch.testing.assert_close(chosen_r, t(0.1, -0.2))
    torch.testing.assert_close(rejected_r, t(-0.2, 0.1))


def test_preference_metrics_hand_example():
    chosen_r = t(0.5, -0.2, 0.1, grad=True)
    rejected_r = t(0.1, 0.3, 0.1)
    m = preference_metrics(chosen_r, rejected_r, t(-1.0, -2.0, -3.0, grad=True), t(-4.0, -5.0, -6.0))
    expected = {
        "rewards/chosen": 0.4 / 3,
        "rewards/rejected": 0.5 / 3,
        "rewards/margins": (0.4 - 0.5 + 0.0) / 3,
        "rewards/accuracies": 1 / 3,  # only the first pair wins; the tie (0.1 vs 0.1) counts as wrong
        "logps/chosen": -2.0,
        "logps/rejected": -5.0,
    }
    assert m.keys() == expected.keys()
    for name, value in expected.items():
        assert m[name].dim() == 0 and not m[name].requires_grad, name
        torch.testing.assert_close(m[name], torch.tensor(value), msg=name)


# --- argument validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"label_smoothing": 0.5}, "label_smoothing"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"label_smoothing": 0.1, "loss_type": "ipo"}, "label_smoothing"),
        ({"label_smoothing": 0.1, "loss_type": "hinge"}, "label_smoothing"),
        ({"loss_type": "kto"}, "loss_type"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        dpo_loss(*pairs_with_margin(1.0, 2.0), **kwargs)


def test_bad_tensors_raise():
    pi_c, pi_r, ref_c, ref_r = pairs_with_margin(1.0, 2.0)
    with pytest.raises(ValueError, match="reference_rejected_logps"):
        dpo_loss(pi_c, pi_r, ref_c, ref_r[:1])
    with pytest.raises(ValueError, match="reference_chosen_logps"):
        dpo_loss(pi_c, pi_r, None, None, loss_type="sigmoid")
    with pytest.raises(ValueError, match="reference_rejected_logps"):
        dpo_loss(pi_c, pi_r, ref_c, None, loss_type="simpo")
    with pytest.raises(ValueError, match="policy_rejected_logps"):
        dpo_loss(pi_c, pi_r[:1], None, None, loss_type="simpo")
