"""Convex learning: hand-computed values, the official LLM / fairseq AR / NAT forms, and limit identities."""

import math

import pytest
import torch
import torch.nn.functional as F

from src.losses.convex import convex_loss
from src.losses.logprobs import sequence_logps

LN2 = math.log(2.0)


def hand_example() -> tuple[torch.Tensor, torch.Tensor]:
    """V=2, ``[2, 3, 2]``. Row 0 keeps 2 tokens with p_y = 1/2, 1/8; row 1 keeps 1 token with p_y = 1/2.

    So l_0 = (ln 1/2 + ln 1/8) / 2 = ln 1/4 -> p~_0 = 1/4; p~_1 = 1/2; N = 3.
    """
    logits = torch.tensor(
        [[[0.0, 0.0], [0.0, math.log(7)], [5.0, -5.0]], [[0.0, 0.0], [3.0, 1.0], [5.0, -5.0]]], dtype=torch.float64
    )
    return logits.requires_grad_(), torch.tensor([[-100, 0, 0], [-100, 0, -100]])


def random_batch(seed: int = 0, b: int = 3, t: int = 6, v: int = 11, scale: float = 1.0):
    """float64 logits and labels with prompt and padding masking; every row keeps at least one token."""
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(b, t, v, generator=g, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, :3] = -100
    labels[1, -2:] = -100
    return logits, labels


def official_llm(logits, labels):
    """ictnlp/Convex-Learning ``LLM/train/run_convex.py`` ``CustomTrainer.compute_loss``, transcribed."""
    logits, labels = logits[..., :-1, :].contiguous(), labels[..., 1:].contiguous()
    lprobs = F.log_softmax(logits, dim=-1)
    padding_mask = labels.eq(-100)
    tgt_lprob = lprobs.gather(dim=-1, index=torch.clamp(labels, min=0).unsqueeze(-1)).squeeze(-1)
    tgt_length = torch.sum(~padding_mask, dim=-1)
    tgt_lprob = tgt_lprob.masked_fill(padding_mask, 0.0)
    tgt_prob = torch.exp(torch.sum(tgt_lprob, dim=-1) / tgt_length * 1)
    return -torch.sum(tgt_prob * tgt_length) / (padding_mask.numel() - padding_mask.long().sum())


def official_fairseq(logits, labels, k, eps, sentence, num_items_in_batch=None):
    """fairseq ``label_smoothed_cross_entropy_convex.compute_convex_loss`` / ``nat_convex._compute_convex_loss``."""
    lprobs = F.log_softmax(logits[:, :-1], dim=-1)  # (B, T-1, V)
    target = labels[:, 1:]
    non_pad = target.ne(-100)
    tgt_length = non_pad.sum(-1)
    tgt_lprob = lprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * non_pad
    tgt_lprob = tgt_lprob.sum(-1) / tgt_length
    tgt_prob = torch.exp(tgt_lprob * k)
    if sentence:  # NAT: sentence mean, smoothing averaged over V and all T positions
        smooth = -lprobs.masked_fill(~non_pad.unsqueeze(-1), 0).mean(-1).mean(-1) * (k * tgt_prob).detach()
        return ((1 - eps) * -tgt_prob + eps * smooth).mean()
    convex = -torch.sum(tgt_prob * tgt_length)
    smooth = -torch.sum((lprobs.sum(-1) * non_pad).sum(-1) * (k * tgt_prob.detach()))
    loss = (1 - eps) * convex + eps / lprobs.size(-1) * smooth
    return loss / (tgt_length.sum() if num_items_in_batch is None else num_items_in_batch)  # fairseq: / ntokens


@pytest.mark.parametrize(
    "order, eps, reduction, expected",
    [
        (1.0, 0.0, "token", -(2 * 0.25 + 0.5) / 3),  # -sum_b L_b p~_b / N = -1/3
        (2.0, 0.0, "token", -(2 / 16 + 1 / 4) / 3),  # p~^2: -1/8
        (1.0, 0.0, "sentence", -(0.25 + 0.5) / 2),  # -mean_b p~_b = -3/8
        # sum_v log p at the kept positions: -2 ln2, ln(1/8) + ln(7/8) = ln(7/64), -2 ln2, so
        # smooth = -[1/4 (-2 ln2 + ln(7/64)) + 1/2 (-2 ln2)] = 1.5 ln2 - ln(7/64) / 4;
        # loss = (0.9 * (-1) + 0.1/2 * smooth) / 3 = -0.27345
        (1.0, 0.1, "token", (-0.9 + 0.05 * (1.5 * LN2 - 0.25 * math.log(7 / 64))) / 3),
        # mean_t mean_v(-log p) over T-1 = 2 positions: row 0 (ln2 - ln(7/64)/2) / 2, row 1 (ln2 + 0) / 2
        (
            1.0,
            0.1,
            "sentence",
            ((-0.9 * 0.25 + 0.1 * 0.25 * (LN2 - math.log(7 / 64) / 2) / 2) + (-0.9 * 0.5 + 0.1 * 0.5 * LN2 / 2)) / 2,
        ),
    ],
)
def test_hand_computed_values(order, eps, reduction, expected):
    logits, labels = hand_example()
    loss = convex_loss(logits, labels, order=order, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_order_one_token_form_is_the_official_llm_loss():
    logits, labels = random_batch()
    ours, ref = convex_loss(logits, labels), official_llm(logits, labels)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(ref, logits)[0])


@pytest.mark.parametrize("reduction, num_items", [("token", None), ("token", 13.0), ("sentence", None)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("order", [0.5, 1.0, 3.0])
def test_matches_official_fairseq_forms_value_and_gradient(order, eps, reduction, num_items):
    logits, labels = random_batch(seed=1)
    ours = convex_loss(logits, labels, order, eps, reduction, num_items_in_batch=num_items)
    ref = official_fairseq(logits, labels, order, eps, reduction == "sentence", num_items)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("order", [1.0, 2.0])
def test_gradient_is_the_ce_gradient_reweighted_by_sequence_probability(order):
    # at a kept position of row b: d loss / dz = -(k p~_b^k / N)(onehot(y) - p); zero elsewhere
    logits, labels = random_batch(seed=2)
    (g,) = torch.autograd.grad(convex_loss(logits, labels, order=order), logits)
    mask = labels[:, 1:] != -100  # (B, T-1)
    weight = order * torch.exp(order * sequence_logps(logits, labels, average=True)) / mask.sum()  # (B,)
    p = torch.softmax(logits[:, :-1], dim=-1)
    onehot = F.one_hot(labels[:, 1:].clamp(min=0), logits.size(-1))
    expected = -weight[:, None, None] * (onehot - p) * mask.unsqueeze(-1)
    torch.testing.assert_close(g[:, :-1], expected.detach(), rtol=1e-12, atol=1e-15)
    assert torch.all(g[:, -1] == 0)


@pytest.mark.parametrize("order", [0.5, 1.0, 3.0])
def test_zero_label_smoothing_is_the_pure_convex_term(order):
    logits, labels = random_batch(seed=3)
    lengths = (labels[:, 1:] != -100).sum(-1)
    pure = -(lengths * torch.exp(order * sequence_logps(logits, labels, average=True))).sum() / lengths.sum()
    torch.testing.assert_close(convex_loss(logits, labels, order, label_smoothing=0.0), pure, rtol=1e-12, atol=1e-14)
    assert (convex_loss(logits, labels, order, label_smoothing=0.1) - pure).abs() > 1e-3  # and smoothing does add


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_micro_batches_with_num_items_in_batch_sum_to_the_full_batch(eps):
    logits, labels = random_batch(seed=4, b=4)
    labels[3, :2] = -100
    total = (labels[:, 1:] != -100).sum()
    full = convex_loss(logits, labels, 2.0, eps)
    parts = sum(convex_loss(logits[i : i + 2], labels[i : i + 2], 2.0, eps, num_items_in_batch=total) for i in (0, 2))
    torch.testing.assert_close(parts, full, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.autograd.grad(parts, logits)[0], torch.autograd.grad(full, logits)[0])


@pytest.mark.parametrize("reduction", ["token", "sentence"])
def test_empty_row_contributes_zero_where_the_official_code_gives_nan(reduction):
    logits, labels = random_batch(seed=5)
    with_empty = labels.clone()
    with_empty[2] = -100
    assert torch.isnan(official_llm(logits, with_empty))
    loss = convex_loss(logits, with_empty, 2.0, 0.1, reduction)
    without = convex_loss(logits[:2], labels[:2], 2.0, 0.1, reduction)
    torch.testing.assert_close(loss, without, rtol=1e-12, atol=1e-14)
    (g,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(g).all() and torch.all(g[2] == 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", ["token", "sentence"])
def test_half_precision_with_masked_labels_is_finite(dtype, reduction):
    logits, labels = random_batch(seed=6, scale=3.0)
    labels[2, 1:] = -100
    half = logits.detach().to(dtype).requires_grad_()
    out = convex_loss(half, labels, 3.0, 0.1, reduction)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, convex_loss(half.detach().float(), labels, 3.0, 0.1, reduction))
    assert torch.isfinite(torch.autograd.grad(out, half)[0]).all()


@pytest.mark.parametrize("reduction", ["token", "sentence"])
def test_gradcheck(reduction):
    logits, labels = random_batch(seed=7, b=3, t=4, v=5)
    labels[2] = -100  # the empty-row guard must be differentiable too
    assert torch.autograd.gradcheck(lambda x: convex_loss(x, labels, 2.0, 0.0, reduction), (logits,))


def test_invalid_hyperparameters_raise():
    logits, labels = random_batch()
    for kwargs, name in [
        (dict(order=0.0), "order"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(label_smoothing=-0.1), "label_smoothing"),
        (dict(reduction="sequence"), "token"),
        (dict(reduction="sentence", num_items_in_batch=10), "num_items_in_batch"),
    ]:
        with pytest.raises(ValueError, match=name):
            convex_loss(logits, labels, **kwargs)
