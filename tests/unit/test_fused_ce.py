"""The fused CE kernels (``module.loss_impl=cce|liger``, ``src/losses/fused_ce.py``) equal the plain path.

float32 throughout (CCE's log-softmax is fp32 whatever the input). On CPU CCE runs its ``torch_compile`` impl: the
first call compiles (~20 s), so the cases share few shapes and few test functions. Observed agreement with plain on
this CPU (largest difference over the largest value of each tensor): tensor-level values and gradients 2e-7; CEModule
loss exact, gradients 2e-10; DPOModule loss 5e-7, gradients 2e-6 (through the policy's and the reference's forwards).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.losses.ce import ce_loss, fused_ce_loss
from src.losses.chunked import kept_hidden
from src.losses.fused_ce import fused_token_nll
from src.losses.logprobs import sequence_logps
from src.losses.sequence_logps import chunked_sequence_logps, fused_sequence_logps
from src.modules.ce import CEModule
from src.modules.convex import ConvexModule
from src.modules.dpo import DPOModule
from src.modules.emo import EMOModule
from src.modules.gem import GEMModule
from src.modules.interleave import InterleaveModule
from tests.integration.test_chunked_modules import build, pair_batch, sft_batch  # noqa: F401 (fixtures)

TOL = dict(rtol=1e-6, atol=1e-6)


def make_inputs(device: str = "cpu", seed: int = 0, b: int = 3, t: int = 7, d: int = 8, v: int = 13):
    """float32 ``hidden [b, t, d]``, ``W [v, d]``, labels with a prompt, padding and a row with no kept token."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, t, d, generator=g).to(device).requires_grad_()
    weight = torch.randn(v, d, generator=g).to(device).requires_grad_()
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, -2:] = -100  # padding
    labels[2] = -100  # no kept token
    return hidden, weight, labels.to(device)


def grads_of(out: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gradients of ``out`` (per-token or per-sequence: weighted 1, 2, 3, ... so each element's weight differs)."""
    if out.dim():
        out = (out * torch.arange(1.0, out.numel() + 1, device=out.device)).sum()
    return torch.autograd.grad(out, inputs)


def assert_same(fused_fn, plain_fn, inputs: tuple[torch.Tensor, ...], tol=TOL, **kwargs) -> None:
    """Value and gradients w.r.t. ``inputs`` of ``fused_fn(**kwargs)`` and ``plain_fn(**kwargs)``; each call builds
    its own graph (a compiled backward cannot retain a shared one)."""
    fused, plain = fused_fn(**kwargs), plain_fn(**kwargs)
    torch.testing.assert_close(fused, plain, **tol)
    for g_fused, g_plain in zip(grads_of(fused, *inputs), grads_of(plain, *inputs)):
        torch.testing.assert_close(g_fused, g_plain, **tol)


def test_cce_equals_plain_per_token_sum_and_per_sequence():
    hidden, weight, labels = make_inputs()
    x = (hidden, weight)

    def fused_nll(reduction):
        h, targets, _ = kept_hidden(hidden, labels)  # (N, D), (N,): masked tokens never reach the kernel
        return fused_token_nll(h, weight, targets, impl="cce", reduction=reduction)

    def plain_nll(reduction):
        h, targets, _ = kept_hidden(hidden, labels)
        return F.cross_entropy(h @ weight.T, targets, reduction=reduction)

    def fused_ce(items):
        h, targets, _ = kept_hidden(hidden, labels)
        return fused_ce_loss(h, weight, targets, impl="cce", num_items_in_batch=items)

    def plain_ce(items):
        return ce_loss(hidden @ weight.T, labels, num_items_in_batch=items)

    def fused_logps(average):
        return fused_sequence_logps(hidden, labels, weight, impl="cce", average=average)

    def plain_logps(average):
        return sequence_logps(hidden @ weight.T, labels, average=average)

    for reduction in ("none", "sum"):
        assert_same(fused_nll, plain_nll, x, reduction=reduction)
    for items in (None, torch.tensor(40.0)):  # the SFT loss; 40: the accumulation window's token count
        assert_same(fused_ce, plain_ce, x, items=items)
    for average in (False, True):  # DPO's per-sequence log-probs, -NLL summed per row (the empty row is 0)
        assert_same(fused_logps, plain_logps, x, average=average)
    # packed rows: each token summed into its sequence (sequence_ids), as the chunked path does
    sequence_ids = torch.arange(labels.numel()).reshape(labels.shape) % 4  # (B, T) in [0, 4)
    packed = dict(sequence_ids=sequence_ids, num_sequences=4)
    assert_same(lambda: fused_sequence_logps(hidden, labels, weight, impl="cce", **packed),
                lambda: chunked_sequence_logps(hidden, labels, weight, chunk_size=5, **packed), x)
    # no kept token at all: 0, on the graph
    nothing = torch.full_like(labels, -100)
    assert fused_sequence_logps(hidden, nothing, weight, impl="cce").tolist() == [0.0, 0.0, 0.0]
    h0, t0, _ = kept_hidden(hidden, nothing)  # (0, D), (0,)
    assert fused_ce_loss(h0, weight, t0, impl="cce").item() == 0.0


def test_fused_kernels_refuse_what_they_cannot_compute():
    hidden, weight, labels = make_inputs()
    h, targets, _ = kept_hidden(hidden, labels)
    with pytest.raises(ValueError, match=r"'cce'.*no bias argument.*loss_impl=chunked or plain"):
        fused_token_nll(h, weight, targets, torch.zeros(weight.shape[0]), impl="cce")
    with pytest.raises(RuntimeError, match=r"'liger'.*needs a CUDA device"):
        fused_token_nll(h, weight, targets, impl="liger", reduction="sum")
    with pytest.raises(ValueError, match="impl must be one of"):
        fused_token_nll(h, weight, targets, impl="chunked")


@pytest.mark.parametrize("cls", [GEMModule, EMOModule, ConvexModule])
def test_objectives_that_are_not_ce_refuse_the_fused_kernels(cls):
    for impl in ("cce", "liger"):
        with pytest.raises(ValueError, match=rf"module.loss_impl='{impl}'.*{cls.__name__} has no {impl} loss.*CE-only"):
            cls(model=None, optimizer=torch.optim.SGD, loss_impl=impl)


@pytest.mark.parametrize("cls", [DPOModule, InterleaveModule])
def test_dpo_refuses_liger(cls):
    """Liger's reduction='none' backward is wrong for per-sequence weights: DPO's log-probs take cce or chunked."""
    with pytest.raises(ValueError, match=rf"module.loss_impl='liger'.*{cls.__name__} has no liger loss"):
        cls(model=None, optimizer=torch.optim.SGD, loss_impl="liger")


def run_step(cls, tokenizer, batch, impl: str, **hparams):
    module = build(cls, tokenizer, impl, **hparams)
    loss, tokens, metrics = module.step(batch, "train")
    loss.backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    return loss.detach(), tokens, metrics, grads


def assert_same_step(cls, tokenizer, batch, **hparams):
    """Loss, token count, every logged metric and every parameter's gradient of ``cce`` equal ``plain``'s."""
    loss_p, tok_p, met_p, grad_p = run_step(cls, tokenizer, batch, "plain", **hparams)
    loss_c, tok_c, met_c, grad_c = run_step(cls, tokenizer, batch, "cce", **hparams)
    torch.testing.assert_close(loss_c, loss_p, rtol=1e-5, atol=1e-6)
    assert tok_c == tok_p and met_c.keys() == met_p.keys()
    for key in met_p:
        torch.testing.assert_close(met_c[key], met_p[key], rtol=1e-5, atol=1e-5, msg=key)
    assert grad_c.keys() == grad_p.keys() and any("lm_head" in n for n in grad_p)
    for name in grad_p:
        torch.testing.assert_close(grad_c[name], grad_p[name], rtol=1e-4, atol=1e-6, msg=name)
    return met_c


def test_modules_with_cce_equal_plain(tokenizer, sft_batch, pair_batch):  # noqa: F811 (fixtures)
    metrics = assert_same_step(CEModule, tokenizer, sft_batch)
    assert {"ce", "entropy"} <= metrics.keys()  # the diagnostics, chunked: no [B, T, V] on the cce path
    assert_same_step(InterleaveModule, tokenizer, sft_batch)  # its SFT side
    assert_same_step(DPOModule, tokenizer, pair_batch)  # sigmoid, the copy reference (through cce as well)
    assert_same_step(DPOModule, tokenizer, pair_batch, average_logps=True, loss_type="ipo")


def test_reference_uses_the_policy_impl(tokenizer, pair_batch):  # noqa: F811 (fixture)
    module = build(DPOModule, tokenizer, "cce")
    path = module.reference.path
    assert (path.name, path.chunk_size, path.gather_head) == ("cce", 7, True)


@pytest.mark.gpu
def test_liger_equals_plain_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("liger_kernel")
    hidden, weight, labels = make_inputs("cuda")
    bias = torch.randn(weight.shape[0], device="cuda", requires_grad=True)  # Liger takes a bias
    h, targets, _ = kept_hidden(hidden, labels)
    plain = F.cross_entropy(h @ weight.T + bias, targets, reduction="sum")
    tol = dict(rtol=1e-4, atol=1e-5)  # the GPU's fp32 matmuls (TF32 off by default) in another order
    assert_same(fused_token_nll(h, weight, targets, bias, impl="liger", reduction="sum"), plain,
                (hidden, weight, bias), tol)
    with pytest.raises(ValueError, match="issue #968"):
        fused_token_nll(h, weight, targets, impl="liger", reduction="none")
