"""Chunked losses from hidden states and the head equal the plain losses on ``logits = h W^T + b``: value, dL/dh, dL/dW.

float64 throughout (the chunked path keeps float64; it only upcasts half precision), so agreement is to rounding.
Chunk sizes 1, 4 (does not divide N) and 1000 (one chunk) cover the loop's edges.
"""

from __future__ import annotations

import pytest
import torch

from src.losses.ce import ce_loss, chunked_ce_loss
from src.losses.chunked import kept_hidden
from src.losses.convex import chunked_convex_loss, convex_loss
from src.losses.diagnostics import chunked_ce_and_entropy, predictive_entropy
from src.losses.emo import chunked_emo_loss, chunked_emo_terms, emo_loss, emo_token_terms
from src.losses.gem import chunked_gem_loss, gem_loss
from src.losses.logprobs import sequence_logps
from src.losses.sequence_logps import chunked_sequence_logps

TOL = dict(rtol=1e-6, atol=1e-9)
CHUNKS = [1, 4, 1000]


def make_inputs(seed: int = 0, b: int = 3, t: int = 7, d: int = 5, v: int = 13, bias: bool = False):
    """float64 ``hidden [b, t, d]``, ``W [v, d]``, optional ``bias [v]``; labels with prompt, padding, an empty row."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, t, d, generator=g, dtype=torch.float64).requires_grad_()
    weight = torch.randn(v, d, generator=g, dtype=torch.float64).requires_grad_()
    b_ = torch.randn(v, generator=g, dtype=torch.float64).requires_grad_() if bias else None
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, -2:] = -100  # padding
    labels[2] = -100  # a row with no kept token
    return hidden, weight, b_, labels


def single_token_inputs():
    hidden, weight, bias, labels = make_inputs()
    labels = torch.full_like(labels, -100)
    labels[1, 4] = 3  # position 3 of row 1 predicts token 3: N = 1
    return hidden, weight, bias, labels


def logits_of(hidden, weight, bias):
    z = hidden @ weight.T  # (B, T, V)
    return z if bias is None else z + bias


def assert_same(plain_fn, chunked_fn, hidden, weight, bias):
    """Value and gradients w.r.t. hidden, W (and bias) of the two paths agree."""
    inputs = [x for x in (hidden, weight, bias) if x is not None]
    plain = plain_fn(logits_of(hidden, weight, bias))
    chunked = chunked_fn()
    torch.testing.assert_close(chunked, plain, **TOL)
    out_p, out_c = plain.sum() if plain.dim() else plain, chunked.sum() if chunked.dim() else chunked
    if plain.dim():  # per-sequence outputs: a non-uniform upstream gradient tests the per-row weights
        w = torch.arange(1.0, plain.numel() + 1, dtype=plain.dtype)
        out_p, out_c = (plain * w).sum(), (chunked * w).sum()
    grads_p = torch.autograd.grad(out_p, inputs)
    grads_c = torch.autograd.grad(out_c, inputs)
    for gp, gc in zip(grads_p, grads_c):
        torch.testing.assert_close(gc, gp, **TOL)


def test_kept_hidden_gathers_only_kept_shifted_positions():
    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # (B=2, T=4, D=1): value = 4 b + t
    labels = torch.tensor([[-100, -100, 7, 8], [5, 6, -100, -100]])
    h, y, rows = kept_hidden(hidden, labels)
    # Position t predicts labels[t + 1]: row 0 keeps t=1 (-> 7), t=2 (-> 8); row 1 keeps t=0 (-> 6).
    assert h.squeeze(-1).tolist() == [1.0, 2.0, 4.0]
    assert y.tolist() == [7, 8, 6] and rows.tolist() == [0, 0, 1]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("num_items", [None, 7.0])
def test_ce_matches_plain(chunk, bias, num_items):
    hidden, weight, b, labels = make_inputs(bias=bias)
    h, y, _ = kept_hidden(hidden, labels)
    assert_same(lambda z: ce_loss(z, labels, num_items_in_batch=num_items),
                lambda: chunked_ce_loss(h, weight, y, b, chunk, num_items_in_batch=num_items), hidden, weight, b)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("h_fn, beta, scale", [("linear", 0.7, 0.01), ("linear", 1.0, 0.01),
                                               ("logsigmoid", 0.7, 0.01), ("logsigmoid", 0.3, 1.0)])
@pytest.mark.parametrize("num_items", [None, torch.tensor(9.0, dtype=torch.float64)])
def test_gem_matches_plain(chunk, h_fn, beta, scale, num_items):
    hidden, weight, b, labels = make_inputs(bias=True, seed=1)
    h, y, _ = kept_hidden(hidden, labels)
    assert_same(lambda z: gem_loss(z, labels, beta, h_fn, logsigmoid_scale=scale, num_items_in_batch=num_items),
                lambda: chunked_gem_loss(h, weight, y, b, beta, h_fn, logsigmoid_scale=scale, chunk_size=chunk,
                                         num_items_in_batch=num_items), hidden, weight, b)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("average", [False, True])
def test_sequence_logps_match_plain(chunk, average):
    hidden, weight, b, labels = make_inputs(bias=True, seed=2)
    assert_same(lambda z: sequence_logps(z, labels, average=average),
                lambda: chunked_sequence_logps(hidden, labels, weight, b, chunk, average), hidden, weight, b)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("reduction", ["token", "sentence"])
@pytest.mark.parametrize("order, eps", [(1.0, 0.0), (2.0, 0.1), (0.5, 0.3)])
def test_convex_matches_plain(chunk, reduction, order, eps):
    hidden, weight, b, labels = make_inputs(seed=3, bias=True)
    hidden = (0.3 * hidden.detach()).requires_grad_()  # sequence probabilities far from underflow
    assert_same(lambda z: convex_loss(z, labels, order, eps, reduction),
                lambda: chunked_convex_loss(hidden, labels, weight, b, order, eps, reduction, chunk_size=chunk),
                hidden, weight, b)


def test_convex_token_num_items_in_batch_matches_plain():
    hidden, weight, b, labels = make_inputs(seed=4)
    assert_same(lambda z: convex_loss(z, labels, 1.5, 0.2, num_items_in_batch=11.0),
                lambda: chunked_convex_loss(hidden, labels, weight, b, 1.5, 0.2, chunk_size=3,
                                            num_items_in_batch=11.0), hidden, weight, b)


EMO_VARIANTS = [  # (mix, ratio_clamp, remove_target_prob): the official variants of src.losses.emo.emo_loss
    ("emo2", None, True), ("emo1", None, True), ("emo1", 3.0, True), ("emo1", None, False), ("emo2", None, False),
    ("emo1", 0.5, False),  # a clamp that binds
]


def cost_embedding(v: int = 13, d: int = 6, seed: int = 9) -> torch.Tensor:
    cost = torch.randn(v, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    cost[5] = 0  # an all-zero row: cost 1 to every token (the 1e-12 norm floor), on both paths
    return cost


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("mix, clamp, remove", EMO_VARIANTS)
@pytest.mark.parametrize("num_items", [None, 9.0])
def test_emo_matches_plain(chunk, mix, clamp, remove, num_items):
    hidden, weight, b, labels = make_inputs(bias=True, seed=6)
    h, y, _ = kept_hidden(hidden, labels)
    cost = cost_embedding()
    assert_same(lambda z: emo_loss(z, labels, cost, mix, clamp, remove, num_items_in_batch=num_items),
                lambda: chunked_emo_loss(h, weight, y, cost, b, mix, clamp, remove, chunk_size=chunk,
                                         num_items_in_batch=num_items), hidden, weight, b)


def test_emo_with_the_live_head_as_cost_matches_plain():
    """The ``adaptive`` variant: the cost embedding is the head being trained, detached."""
    hidden, weight, _, labels = make_inputs(seed=7)
    h, y, _ = kept_hidden(hidden, labels)
    assert_same(lambda z: emo_loss(z, labels, weight.detach(), "emo1"),
                lambda: chunked_emo_loss(h, weight, y, weight.detach(), mix="emo1", chunk_size=4), hidden, weight, None)


@pytest.mark.parametrize("remove", [True, False])
def test_emo_terms_match_plain(remove):
    hidden, weight, b, labels = make_inputs(bias=True, seed=8)
    h, y, _ = kept_hidden(hidden, labels)
    emo, mle = emo_token_terms(logits_of(hidden, weight, b).detach(), labels, cost_embedding(), remove)
    got = chunked_emo_terms(h.detach(), weight.detach(), y, cost_embedding(), b, remove, chunk_size=4)
    torch.testing.assert_close(got, (emo.mean(), mle.mean()), **TOL)


def test_emo_refuses_a_cost_embedding_with_gradient():
    hidden, weight, _, labels = make_inputs()
    h, y, _ = kept_hidden(hidden, labels)
    with pytest.raises(ValueError, match="no gradient"):
        chunked_emo_loss(h, weight, y, weight)


@pytest.mark.parametrize("name", ["ce", "gem", "seq", "convex", "emo"])
def test_single_kept_token(name):
    hidden, weight, b, labels = single_token_inputs()
    h, y, _ = kept_hidden(hidden, labels)
    assert h.shape[0] == 1
    plain, chunked = {
        "ce": (lambda z: ce_loss(z, labels), lambda: chunked_ce_loss(h, weight, y, chunk_size=4)),
        "gem": (lambda z: gem_loss(z, labels, 0.5, "logsigmoid"),
                lambda: chunked_gem_loss(h, weight, y, None, 0.5, "logsigmoid", chunk_size=4)),
        "seq": (lambda z: sequence_logps(z, labels), lambda: chunked_sequence_logps(hidden, labels, weight)),
        "convex": (lambda z: convex_loss(z, labels, 2.0, 0.1, "sentence"),
                   lambda: chunked_convex_loss(hidden, labels, weight, None, 2.0, 0.1, "sentence")),
        "emo": (lambda z: emo_loss(z, labels, cost_embedding(), "emo1", 3.0),
                lambda: chunked_emo_loss(h, weight, y, cost_embedding(), None, "emo1", 3.0, chunk_size=4)),
    }[name]
    assert_same(plain, chunked, hidden, weight, None)


def test_no_kept_token_gives_zero_with_a_graph():
    hidden, weight, _, labels = make_inputs()
    h, y, _ = kept_hidden(hidden, torch.full_like(labels, -100))
    loss = chunked_ce_loss(h, weight, y)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(weight.grad == 0)


def test_gem_at_beta_one_linear_has_the_ce_gradient():
    hidden, weight, _, labels = make_inputs(seed=5)
    h, y, _ = kept_hidden(hidden, labels)
    g_gem = torch.autograd.grad(chunked_gem_loss(h, weight, y, beta=1.0, chunk_size=4), weight)[0]
    g_ce = torch.autograd.grad(chunked_ce_loss(h, weight, y, chunk_size=4), weight)[0]
    torch.testing.assert_close(g_gem, g_ce, **TOL)


def test_diagnostics_match_plain():
    hidden, weight, b, labels = make_inputs(bias=True)
    h, y, _ = kept_hidden(hidden, labels)
    ce, entropy = chunked_ce_and_entropy(h, weight, y, b, chunk_size=4)
    logits = logits_of(hidden, weight, b).detach()
    torch.testing.assert_close(ce, ce_loss(logits, labels), **TOL)
    torch.testing.assert_close(entropy, predictive_entropy(logits, labels).double(), **TOL)


def test_bfloat16_head_is_close_to_the_fp32_plain_path():
    hidden, weight, _, labels = make_inputs(t=9, v=50)
    h, y, _ = kept_hidden(hidden, labels)
    loss = chunked_ce_loss(h.bfloat16(), weight.bfloat16(), y, chunk_size=4)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ce_loss(logits_of(hidden, weight, None), labels), rtol=2e-2, atol=0)


def test_chunk_size_must_be_positive():
    hidden, weight, _, labels = make_inputs()
    h, y, _ = kept_hidden(hidden, labels)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_ce_loss(h, weight, y, chunk_size=0)


def test_upstream_gradient_scales_the_stored_gradients_once():
    """Lightning scales the loss by 1/k before backward: the in-place scaling must give 3 x the unit gradient."""
    hidden, weight, _, labels = make_inputs()
    h, y, _ = kept_hidden(hidden, labels)
    (unit,) = torch.autograd.grad(chunked_ce_loss(h, weight, y, chunk_size=4), weight)
    loss = 3 * chunked_ce_loss(h, weight, y, chunk_size=4)
    (scaled,) = torch.autograd.grad(loss, weight, retain_graph=True)
    torch.testing.assert_close(scaled, 3 * unit, **TOL)
    with pytest.raises(RuntimeError, match="only once"):
        torch.autograd.grad(loss, weight)
