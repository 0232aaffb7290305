"""EMO: hand-computed values, the official three-matmul form, limit identities and precision."""

import math

import pytest
import torch
import torch.nn.functional as F

from src.losses.emo import emo_loss, emo_token_terms

SQRT2 = math.sqrt(2.0)
MIXES = [("emo1", None), ("emo1", 3.0), ("emo2", None)]


def random_batch(seed: int = 0, b: int = 3, t: int = 6, v: int = 11, d: int = 5, dtype=torch.float64):
    """Logits ``[b, t, v]``, labels with prompt/padding masking and an all-ignored row, embedding ``[v, d]``."""
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(b, t, v, generator=g, dtype=dtype)).requires_grad_()
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, :3] = -100
    labels[1, -2:] = -100
    labels[2] = -100
    return logits, labels, torch.randn(v, d, generator=g, dtype=dtype)


def official_emo(logits, labels, emb, mix, clamp, remove_gt, num_items_in_batch=None):
    """DRSY/EMO's loss (emo_patch / emo_llama / PyPI EMOLoss), transcribed: one-hot p~, three [N, V] products."""
    v = logits.size(-1)
    z = logits[:, :-1].contiguous().view(-1, v)  # (N, V), N = B(T-1) with ignored rows
    y = labels[:, 1:].contiguous().view(-1)
    mask = (y != -100).to(z.dtype)
    mle = F.cross_entropy(z, y, reduction="none")
    one_hot = F.one_hot(y.masked_fill(y == -100, 0), num_classes=v).to(z.dtype)
    stable_onehot = (one_hot + 1e-15) / torch.linalg.vector_norm(one_hot + 1e-15, ord=1, dim=-1, keepdim=True)
    emb = emb / torch.linalg.vector_norm(emb, ord=2, dim=1, keepdim=True)
    q = torch.log_softmax(z, dim=-1).exp()
    if remove_gt:
        q = q - (q * one_hot).detach()
    emo = 1 - torch.sum((stable_onehot @ emb) * (q @ emb), dim=-1)
    if mix == "emo1":
        ratio = (mle / (emo + 1e-10)).detach()
        loss = 0.5 * (mle + (ratio if clamp is None else ratio.clamp(max=clamp)) * emo)
    else:
        loss = (emo / (mle + 1e-10)).detach() * mle + emo
    denom = 1e-15 + mask.sum() if num_items_in_batch is None else num_items_in_batch
    return (loss * mask).sum() / denom


def hand_example():
    """V=3, D=2; uniform logits (q = 1/3 each) predicting token 0; cos(0, .) = [1, 0, 1/sqrt2]."""
    logits = torch.zeros(1, 2, 3, dtype=torch.float64, requires_grad=True)
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    return logits, torch.tensor([[-100, 0]]), emb


# plain emo = sum_v q_v (1 - cos) = (0 + 1 + (1 - 1/sqrt2)) / 3; removing q_y adds 1/3; mle = ln 3.
EMO_PLAIN = (2 - 1 / SQRT2) / 3  # 0.430964
EMO_REMOVED = 1 - 1 / (3 * SQRT2)  # 0.764298


@pytest.mark.parametrize(
    "mix, clamp, remove, expected",
    [
        ("emo2", None, True, 2 * EMO_REMOVED),  # value of emo2 is 2 emo
        ("emo2", None, False, 2 * EMO_PLAIN),
        ("emo1", None, True, math.log(3)),  # value of unclamped emo1 is mle
        # ratio ln3 / 0.764298 = 1.437 clamped to 1 -> (ln3 + 1 * 0.764298) / 2 = 0.931448
        ("emo1", 1.0, True, (math.log(3) + EMO_REMOVED) / 2),
    ],
)
def test_hand_computed_values(mix, clamp, remove, expected):
    logits, labels, emb = hand_example()
    loss = emo_loss(logits, labels, emb, mix=mix, ratio_clamp=clamp, remove_target_prob=remove)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_hand_computed_emo2_gradient():
    # d emo / dz_k = q_k (sum_v q_v cos_v - cos_k) with sum_v q_v cos_v = (1 + 1/sqrt2) / 3;
    # emo2 gradient = s (q - onehot) + d emo, s = emo / mle.
    logits, labels, emb = hand_example()
    (g,) = torch.autograd.grad(emo_loss(logits, labels, emb, mix="emo2"), logits)
    cos = torch.tensor([1.0, 0.0, 1 / SQRT2], dtype=torch.float64)
    q = torch.full((3,), 1 / 3, dtype=torch.float64)
    d_emo = q * ((1 + 1 / SQRT2) / 3 - cos)
    s = EMO_REMOVED / math.log(3)
    torch.testing.assert_close(g[0, 0], s * (q - torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)) + d_emo)


def test_all_zero_embedding_row_costs_one_instead_of_nan():
    # row 2 zeroed: cos(0, 2) = 0 (the official 0/0 normalisation gives NaN) -> plain emo = (0 + 1 + 1) / 3
    logits, labels, emb = hand_example()
    emb[2] = 0.0
    emo, _ = emo_token_terms(logits, labels, emb, remove_target_prob=False)
    torch.testing.assert_close(emo, torch.tensor([2 / 3], dtype=torch.float64))


@pytest.mark.parametrize("num_items", [None, 9.0])
@pytest.mark.parametrize("remove", [True, False])
@pytest.mark.parametrize("mix, clamp", MIXES)
def test_matches_official_form_value_and_gradients(mix, clamp, remove, num_items):
    logits, labels, emb = random_batch()
    emb.requires_grad_()  # as with the PyPI package's trainable cost_embedding
    kw = dict(mix=mix, ratio_clamp=clamp, remove_target_prob=remove, num_items_in_batch=num_items)
    ours = emo_loss(logits, labels, emb, **kw)
    ref = official_emo(logits, labels, emb, mix, clamp, remove, num_items)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours, (logits, emb))
    g_ref = torch.autograd.grad(ref, (logits, emb))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_clamp_binds_on_the_random_batch():
    logits, labels, emb = random_batch()  # guards the clamped cases above against being the unclamped ones
    clamped = emo_loss(logits, labels, emb, mix="emo1", ratio_clamp=3.0)
    assert clamped < emo_loss(logits, labels, emb, mix="emo1") - 1e-3


@pytest.mark.parametrize("remove", [True, False])
def test_emo1_value_equals_ce_and_emo2_value_is_twice_emo(remove):
    logits, labels, emb = random_batch(seed=1)
    v = logits.size(-1)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(emo_loss(logits, labels, emb, "emo1", remove_target_prob=remove), ce)
    emo, _ = emo_token_terms(logits, labels, emb, remove)
    torch.testing.assert_close(emo_loss(logits, labels, emb, "emo2", remove_target_prob=remove), 2 * emo.mean())


def test_remove_target_prob_adds_q_y_to_the_value_but_not_the_gradient():
    logits, labels, emb = random_batch(seed=2)
    emo_rm, mle_rm = emo_token_terms(logits, labels, emb, remove_target_prob=True)
    emo_pl, mle_pl = emo_token_terms(logits, labels, emb, remove_target_prob=False)
    q_y = torch.exp(-mle_pl)  # the target-token probability per kept token
    torch.testing.assert_close(emo_rm - emo_pl, q_y.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mle_rm, mle_pl)
    (g_rm,) = torch.autograd.grad(emo_rm.sum(), logits)
    (g_pl,) = torch.autograd.grad(emo_pl.sum(), logits)
    torch.testing.assert_close(g_rm, g_pl, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mix, clamp", MIXES)
def test_micro_batches_with_num_items_in_batch_sum_to_the_full_batch(mix, clamp):
    logits, labels, emb = random_batch(seed=3, b=4)
    labels[3, :2] = -100
    total = (labels[:, 1:] != -100).sum()
    full = emo_loss(logits, labels, emb, mix, clamp)
    parts = sum(
        emo_loss(logits[i : i + 2], labels[i : i + 2], emb, mix, clamp, num_items_in_batch=total) for i in (0, 2)
    )
    torch.testing.assert_close(parts, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(parts, logits)[0], torch.autograd.grad(full, logits)[0])


def test_gradient_reaches_cost_embedding_only_when_it_requires_grad():
    logits, labels, emb = random_batch(seed=4)
    frozen = emo_loss(logits, labels, emb)
    (g_frozen,) = torch.autograd.grad(frozen, logits)
    assert frozen.grad_fn is not None and emb.grad is None
    trainable = emb.clone().requires_grad_()
    g_logits, g_emb = torch.autograd.grad(emo_loss(logits, labels, trainable), (logits, trainable))
    assert g_emb.abs().max() > 1e-3
    torch.testing.assert_close(g_logits, g_frozen, rtol=0, atol=0)  # the logits gradient does not depend on it


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mix, clamp", MIXES)
def test_half_precision_with_masked_labels_is_finite(dtype, mix, clamp):
    logits, labels, emb = random_batch(seed=5)
    half, half_emb = logits.detach().to(dtype).requires_grad_(), emb.to(dtype)
    out = emo_loss(half, labels, half_emb, mix, clamp)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, emo_loss(half.detach().float(), labels, half_emb.float(), mix, clamp))
    assert torch.isfinite(torch.autograd.grad(out, half)[0]).all()


def test_official_form_nans_in_fp16_with_masked_labels_where_ours_does_not():
    # why we upcast: at an ignored position mle = 0 and 1e-10 underflows in fp16, so emo/(mle+eps) = inf, inf*0 = NaN
    logits, labels, emb = random_batch(seed=5)
    half, half_emb = logits.detach().half(), emb.half()
    assert torch.isnan(official_emo(half, labels, half_emb, "emo2", None, True))
    assert torch.isfinite(emo_loss(half, labels, half_emb, "emo2"))


def test_gradcheck_emo_term_wrt_logits_and_embedding():
    # the mixed loss detaches its ratio, so its value is not its potential; the emo term itself is differentiable
    logits, labels, emb = random_batch(seed=6, b=3, t=4, v=5, d=3)
    emb.requires_grad_()

    def emo_term(x, e):  # (N,) per kept token
        return emo_token_terms(x, labels, e, remove_target_prob=False)[0]

    assert torch.autograd.gradcheck(emo_term, (logits, emb))


def test_invalid_arguments_raise():
    logits, labels, emb = random_batch()
    with pytest.raises(ValueError, match="emo1"):
        emo_loss(logits, labels, emb, mix="emo3")
    with pytest.raises(ValueError, match="ratio_clamp"):
        emo_loss(logits, labels, emb, mix="emo2", ratio_clamp=3.0)
    with pytest.raises(ValueError, match="ratio_clamp"):
        emo_loss(logits, labels, emb, mix="emo1", ratio_clamp=0.0)
    with pytest.raises(ValueError, match="cost_embedding"):
        emo_loss(logits, labels, emb[:-1])
