"""``module.loss_impl=chunked`` gives the plain path's loss, metrics and gradients on a tiny Llama, for every objective
that has a chunked loss; the others refuse it by name."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from src.datamodules.collate import pad_batch
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.modules.backbones import tiny_llama
from src.modules.ce import CEModule
from src.modules.convex import ConvexModule
from src.modules.dpo import DPOModule
from src.modules.emo import EMOModule
from src.modules.gem import GEMModule
from src.modules.head_path import head_path
from src.modules.interleave import InterleaveModule
from src.modules.reference import PrecomputedReference

LORA = {"r": 4, "alpha": 8}


class OneRank:
    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        return tensor


def build(cls, tokenizer, impl: str, lora=None, tie: bool = False, **hparams):
    factory = partial(tiny_llama, tokenizer, hidden_size=32, num_layers=2, num_heads=2, lora=lora,
                      tie_word_embeddings=tie)
    module = cls(model=factory, optimizer=torch.optim.SGD, loss_impl=impl, loss_chunk_size=7, **hparams)
    torch.manual_seed(0)  # LoRA's A matrices come from the global RNG
    module.configure_model()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the policy off its reference (and LoRA's B off 0): DPO rewards are then not ties
        for param in module.model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=g))
    # A trainer stub: the global-batch denominator (num_items_in_batch) is then used, and every step logs.
    module._trainer = SimpleNamespace(strategy=OneRank(), accumulate_grad_batches=3, world_size=1,
                                      log_every_n_steps=1, global_step=0, max_steps=-1,
                                      fast_dev_run=False, should_stop=False)
    return module


@pytest.fixture(scope="module")
def sft_batch(tokenizer):
    dm = ToyWorldSFTDataModule(limit=6, val_limit=2, seed=0)
    dm.setup()
    batch = pad_batch(dm.datasets["train"].examples, tokenizer.pad_token_id)  # (6, T), prompts masked
    batch["num_items_in_batch"] = (batch["labels"][:, 1:] != -100).sum() * 2  # as if a second micro-batch came
    return batch


@pytest.fixture(scope="module")
def pair_batch():
    dm = ToyWorldPreferenceDataModule(num_train=8, num_val=4, batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    return next(iter(dm.val_dataloader()))


def assert_same_step(cls, tokenizer, batch, lora=None, tie=False, **hparams):
    results = {}
    for impl in ("plain", "chunked"):
        module = build(cls, tokenizer, impl, lora, tie, **hparams)
        loss, tokens, metrics = module.step(batch, "train")
        loss.backward()
        grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
        results[impl] = (loss.detach(), tokens, metrics, grads)
    (loss_p, tok_p, met_p, grad_p), (loss_c, tok_c, met_c, grad_c) = results["plain"], results["chunked"]
    torch.testing.assert_close(loss_c, loss_p, rtol=1e-5, atol=1e-6)
    assert tok_c == tok_p and met_c.keys() == met_p.keys()
    for key in met_p:
        torch.testing.assert_close(met_c[key], met_p[key], rtol=1e-5, atol=1e-5, msg=key)
    assert grad_c.keys() == grad_p.keys()
    head = [n for n in grad_p if "lm_head" in n or "embed_tokens" in n]
    assert head or lora, "the head's gradient must be compared"
    for name in grad_p:
        torch.testing.assert_close(grad_c[name], grad_p[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("cls, hparams", [
    (CEModule, {}),
    (GEMModule, {"beta": 0.7, "h": "linear"}),
    (GEMModule, {"beta": 0.5, "h": "logsigmoid", "logsigmoid_scale": 0.1}),
    (ConvexModule, {"order": 1.0}),
    (ConvexModule, {"order": 2.0, "label_smoothing": 0.1, "reduction": "sentence"}),
    (ConvexModule, {"ce_warmup_steps": 5}),
    (InterleaveModule, {}),
    (EMOModule, {}),  # emo2, the cost embedding a frozen copy of the head
    (EMOModule, {"mix": "emo1", "ratio_clamp": 3.0, "cost_embedding": "adaptive"}),
    (EMOModule, {"mix": "emo1", "remove_target_prob": False}),
])
def test_sft_objectives_chunked_equal_plain(cls, hparams, tokenizer, sft_batch):
    assert_same_step(cls, tokenizer, sft_batch, **hparams)


def test_tied_head_and_lora_backbone(tokenizer, sft_batch):
    assert_same_step(GEMModule, tokenizer, sft_batch, tie=True, h="logsigmoid")
    assert_same_step(CEModule, tokenizer, sft_batch, lora=LORA)


@pytest.mark.parametrize("hparams", [{}, {"average_logps": True, "loss_type": "ipo", "sft_weight": 0.5}])
def test_dpo_chunked_equals_plain(hparams, tokenizer, pair_batch):
    assert_same_step(DPOModule, tokenizer, pair_batch, **hparams)
    assert_same_step(DPOModule, tokenizer, pair_batch, lora=LORA, reference="adapter", **hparams)


def test_objective_without_a_chunked_loss_refuses_it(tokenizer):
    class NoChunked(CEModule):
        loss_impls = ("plain",)

    with pytest.raises(ValueError, match=r"module.loss_impl='chunked'.*NoChunked has no chunked loss"):
        NoChunked(model=None, optimizer=torch.optim.SGD, loss_impl="chunked")
    with pytest.raises(ValueError, match=r"module.loss_impl='fused'"):
        CEModule(model=None, optimizer=torch.optim.SGD, loss_impl="fused")
    with pytest.raises(ValueError, match=r"module.loss_chunk_size=0"):
        CEModule(model=None, optimizer=torch.optim.SGD, loss_chunk_size=0)


@pytest.mark.parametrize("reference, lora", [("copy", None), ("adapter", LORA)])
def test_dpo_reference_is_chunked_with_the_policy(reference, lora, tokenizer, pair_batch):
    """The reference's log-probs equal the plain ones, and its head projects one position per row, not ``[2B, T]``."""
    logps = {}
    for impl in ("plain", "chunked"):
        module = build(DPOModule, tokenizer, impl, lora, reference=reference)
        ref_model = module.reference.model if reference == "copy" else module.model
        shapes = []
        head = ref_model.get_output_embeddings()
        hook = head.register_forward_hook(lambda m, i, out, seen=shapes: seen.append(out.shape))
        logps[impl] = module.reference.logps(pair_batch, "val")
        hook.remove()
        assert shapes and all(shape[1] == (1 if impl == "chunked" else pair_batch["chosen_input_ids"].shape[1])
                              for shape in shapes)
    for plain, chunked in zip(logps["plain"], logps["chunked"]):
        torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-5)


def test_precomputed_reference_is_chunked_and_keyed_apart(tokenizer, tmp_path):
    dm = ToyWorldPreferenceDataModule(num_train=8, num_val=6, batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    model = tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    tables = {}
    for chunk in (None, 7):
        impl = "plain" if chunk is None else "chunked"
        ref = PrecomputedReference(model, average=False, cache_dir=tmp_path, path=head_path(impl, chunk or 1024))
        ref.prepare(model, {"val": dm.datasets["val"].examples}, dm.collate_fn(), 4)
        assert ref.computed_batches == 2  # the chunked table is not the plain one's cache entry
        tables[chunk] = ref.tables["val"]
    torch.testing.assert_close(tables[7], tables[None], rtol=1e-5, atol=1e-5)
