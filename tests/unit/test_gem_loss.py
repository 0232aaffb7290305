"""GEM: hand-computed values, the official masked-flatten formula, and its limit identities."""

import math

import pytest
import torch
import torch.nn.functional as F

from src.losses.ce import ce_loss
from src.losses.gem import gem_loss

LN2 = math.log(2.0)


def one_token(z0: list[float], y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[1, 2, V]`` float64 logits: position 0 (logits ``z0``) predicts ``y``; the last position predicts nothing."""
    logits = torch.tensor([[z0, [0.0] * len(z0)]], dtype=torch.float64, requires_grad=True)
    return logits, torch.tensor([[-100, y]])


def random_batch(seed: int = 0, b: int = 3, t: int = 6, v: int = 11, scale: float = 2.0):
    """float64 logits ``[b, t, v]`` and labels with prompt masking and one row that keeps nothing."""
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(b, t, v, generator=g, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, -2:] = -100  # padding
    labels[2] = -100  # a row with no kept token
    return logits, labels


def official_gem(logits, labels, beta, h, num_items_in_batch=None, scale=0.01):
    """liziniu/GEM ``SFTTrainer.gem_loss`` (sft_trainer.py / sft_trainer_v2.py), transcribed."""
    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = labels[..., 1:].contiguous()
    mask = shift_labels != -100
    shift_logits = shift_logits[mask]  # (N, V)
    shift_labels = shift_labels[mask]  # (N,)
    with torch.no_grad():
        logits_diff = shift_logits - shift_logits.gather(-1, shift_labels.unsqueeze(-1))
        if h == "linear":
            weights = torch.ones_like(logits_diff)
        else:
            weights = torch.sigmoid(scale * logits_diff)
    logprobs = F.log_softmax(shift_logits, dim=-1)
    with torch.no_grad():
        q_probs = torch.exp(F.log_softmax(shift_logits / beta, dim=-1)).detach()
    real_logprobs = logprobs.gather(-1, shift_labels.unsqueeze(-1))
    loss = -torch.sum(q_probs * weights * (real_logprobs - logprobs), dim=-1)
    return loss.mean() if num_items_in_batch is None else loss.sum() / num_items_in_batch


@pytest.mark.parametrize(
    "beta, h, scale, expected, grad",
    [
        # z = [0, ln2, 0], y = 0 -> p = [1/4, 1/2, 1/4]; loss = sum_v c_v (z_v - z_y) = c_1 ln2.
        # beta=1, linear: c = p -> ln2 / 2; gradient c - S onehot = [-3/4, 1/2, 1/4].
        (1.0, "linear", 0.01, LN2 / 2, [-0.75, 0.5, 0.25]),
        # beta=0.5: q ∝ exp(2z) = [1, 4, 1] / 6 -> (2/3) ln2; gradient q - onehot.
        (0.5, "linear", 0.01, 2 * LN2 / 3, [1 / 6 - 1, 4 / 6, 1 / 6]),
        # beta=1, logsigmoid with scale 1: w = [σ(0), σ(ln2), σ(0)] = [1/2, 2/3, 1/2], c = [1/8, 1/3, 1/8], S = 7/12
        # -> loss = (1/3) ln2; gradient c - S onehot = [1/8 - 7/12, 1/3, 1/8].
        (1.0, "logsigmoid", 1.0, LN2 / 3, [1 / 8 - 7 / 12, 1 / 3, 1 / 8]),
    ],
)
def test_hand_computed_value_and_gradient(beta, h, scale, expected, grad):
    logits, labels = one_token([0.0, LN2, 0.0], y=0)
    loss = gem_loss(logits, labels, beta=beta, h=h, logsigmoid_scale=scale)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    (g,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(g[0, 0], torch.tensor(grad, dtype=torch.float64))
    assert torch.all(g[0, 1] == 0)  # the last position predicts nothing


def test_value_is_a_surrogate_that_goes_negative_when_target_is_argmax():
    # z = [2, 0, 0], y = 0, beta = 1: every z_v - z_y <= 0, so loss = -2 (q_1 + q_2) = -4 / (e^2 + 2), while CE > 0.
    logits, labels = one_token([2.0, 0.0, 0.0], y=0)
    loss = gem_loss(logits, labels, beta=1.0)
    torch.testing.assert_close(loss, torch.tensor(-4 / (math.e**2 + 2), dtype=torch.float64))
    assert ce_loss(logits, labels) > 0


@pytest.mark.parametrize("num_items", [None, 7.0])
@pytest.mark.parametrize("h", ["linear", "logsigmoid"])
@pytest.mark.parametrize("beta", [0.3, 0.7, 1.0, 2.0])
def test_matches_official_formula_value_and_gradient(beta, h, num_items):
    logits, labels = random_batch()
    ours = gem_loss(logits, labels, beta=beta, h=h, num_items_in_batch=num_items)
    ref = official_gem(logits, labels, beta, h, num_items)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-14)


def fp64_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean CE kept in float64 (``ce_loss`` computes in fp32, too coarse for a 1e-12 comparison)."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))


def test_beta_one_linear_has_exactly_the_ce_gradient_and_value_ce_minus_entropy():
    logits, labels = random_batch(seed=1)
    gem = gem_loss(logits, labels, beta=1.0, h="linear")
    ce = fp64_ce(logits, labels)
    (g_gem,) = torch.autograd.grad(gem, logits)
    (g_ce,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(g_gem, g_ce, rtol=1e-12, atol=1e-15)
    # value: token mean of CE - H(p) over the kept tokens
    logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, T-1, V)
    mask = labels[:, 1:] != -100
    entropy = -(logp.exp() * logp).sum(-1)[mask].mean()
    torch.testing.assert_close(gem, ce - entropy, rtol=1e-12, atol=1e-12)


def test_beta_below_one_differs_from_ce_gradient():
    logits, labels = random_batch(seed=1)
    (g_gem,) = torch.autograd.grad(gem_loss(logits, labels, beta=0.5), logits)
    (g_ce,) = torch.autograd.grad(fp64_ce(logits, labels), logits)
    assert (g_gem - g_ce).abs().max() > 1e-3


def test_logsigmoid_is_about_half_the_linear_gradient_for_small_logits():
    logits, labels = random_batch(seed=2, scale=0.5)  # gaps of a few units << 1 / 0.01
    (g_lin,) = torch.autograd.grad(gem_loss(logits, labels, h="linear"), logits)
    (g_log,) = torch.autograd.grad(gem_loss(logits, labels, h="logsigmoid"), logits)
    # w = σ(0.01 u) = 1/2 + u/400 + O(u^3): relative deviation ~ |u| / 200, about 1% here.
    rel = (g_log - 0.5 * g_lin).norm() / (0.5 * g_lin).norm()
    assert 1e-4 < rel < 0.02


def test_logsigmoid_gradient_is_that_of_the_frozen_q_logsigmoid_objective():
    # d/dz of -sum_v sg(q_v) (1/s) log σ(s (log p_y - log p_v)) at z0 is the GEM logsigmoid gradient.
    logits, labels = one_token([0.3, -1.2, 2.0, 0.5], y=1)
    scale, beta = 0.5, 0.7
    (g_gem,) = torch.autograd.grad(gem_loss(logits, labels, beta, "logsigmoid", logsigmoid_scale=scale), logits)
    z = logits[0, 0]
    q0 = torch.softmax(z / beta, -1).detach()
    logp = torch.log_softmax(z, -1)
    objective = -(q0 * F.logsigmoid(scale * (logp[1] - logp)) / scale).sum()
    (g_obj,) = torch.autograd.grad(objective, logits)
    torch.testing.assert_close(g_gem, g_obj, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("h", ["linear", "logsigmoid"])
def test_micro_batches_with_num_items_in_batch_sum_to_the_full_batch(h):
    logits, labels = random_batch(seed=3, b=4)
    labels[3, :2] = -100
    total = (labels[:, 1:] != -100).sum()
    full = gem_loss(logits, labels, h=h)
    parts = sum(gem_loss(logits[i : i + 2], labels[i : i + 2], h=h, num_items_in_batch=total) for i in (0, 2))
    torch.testing.assert_close(parts, full, rtol=1e-12, atol=1e-12)
    (g_full,) = torch.autograd.grad(full, logits)
    (g_parts,) = torch.autograd.grad(parts, logits)
    torch.testing.assert_close(g_parts, g_full, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_finite_and_computed_in_fp32(dtype):
    logits, labels = random_batch(seed=4)
    half = logits.detach().to(dtype).requires_grad_()
    out = gem_loss(half, labels, h="logsigmoid")
    assert out.dtype == torch.float32 and torch.isfinite(out)
    # the same rounded logits in fp32 give the same number: the math runs in fp32
    torch.testing.assert_close(out, gem_loss(half.detach().float(), labels, h="logsigmoid"))
    (g,) = torch.autograd.grad(out, half)
    assert g.dtype == dtype and torch.isfinite(g).all()


def test_all_ignored_batch_gives_zero_not_nan():
    logits, labels = random_batch()
    loss = gem_loss(logits, torch.full_like(labels, -100))
    assert loss.item() == 0.0


@pytest.mark.parametrize("h", ["linear", "logsigmoid"])
def test_gradcheck_at_equal_logits(h):
    # The value sum_v c_v (z_v - z_y) freezes c, so its true derivative equals the surrogate gradient only where all
    # z_v - z_y = 0. There (per-row constant logits) gradcheck compares our autograd path with finite differences.
    logits = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)[:, None, None].expand(3, 1, 5).reshape(1, 3, 5)
    logits = logits.clone().requires_grad_()
    labels = torch.tensor([[-100, 4, 1]])
    assert torch.autograd.gradcheck(lambda x: gem_loss(x, labels, beta=0.7, h=h), (logits,))


def test_invalid_hyperparameters_raise():
    logits, labels = random_batch()
    with pytest.raises(ValueError, match="linear"):
        gem_loss(logits, labels, h="tanh")
    for beta in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            gem_loss(logits, labels, beta=beta)
