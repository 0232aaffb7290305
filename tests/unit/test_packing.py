"""Packing: bins, packed rows, and a packed batch giving every document the loss and gradient it has unpacked."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from src.datamodules.collate import SFTCollator
from src.datamodules.packing import PackedCollator, best_fit_decreasing, pack_examples
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.losses.logprobs import IGNORE_INDEX, num_label_tokens
from src.modules.backbones import tiny_llama
from src.modules.ce import CEModule
from src.modules.convex import ConvexModule
from src.modules.gem import GEMModule


def test_best_fit_decreasing_places_every_example_once_within_capacity():
    lengths = [7, 3, 5, 2, 8, 1, 4, 6, 2, 2]
    bins = best_fit_decreasing(lengths, capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4  # 40 tokens in bins of 10: no slack at all (in data order, greedy filling needs 6)
    assert bins == best_fit_decreasing(lengths, capacity=10)  # a pure function of the lengths


def test_best_fit_decreasing_refuses_an_example_longer_than_a_row():
    with pytest.raises(ValueError, match="12 tokens does not fit a packed row of 10"):
        best_fit_decreasing([3, 12], capacity=10)


def test_packed_rows_restart_positions_and_never_predict_across_documents():
    docs = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [4, 5]},
            {"input_ids": [6, 7, 8, 9], "labels": [6, 7, 8, 9]}]
    rows = pack_examples(docs, length=9)
    assert len(rows) == 1 and rows[0]["num_documents"] == 3
    assert rows[0]["input_ids"] == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # documents in their given order
    assert rows[0]["position_ids"] == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    # Each document's first label is the one its unpacked loss never predicts (the shift drops it).
    assert rows[0]["labels"] == [-100, 2, 3, -100, 5, -100, 7, 8, 9]
    batch = PackedCollator(pad_id=0)([rows[0], {**rows[0], "input_ids": [1, 2], "labels": [-100, 2],
                                                "position_ids": [0, 1]}])
    assert batch["position_ids"][1].tolist() == [0, 1, 0, 1, 2, 3, 4, 5, 6]  # the padding: a document of its own
    assert batch["labels"][1, 2:].eq(IGNORE_INDEX).all() and batch["attention_mask"][1].tolist() == [1, 1] + [0] * 7
    assert batch["num_documents"].tolist() == [3, 3]  # samples per row, for train/samples_per_sec


@pytest.fixture(scope="module")
def documents(tokenizer):
    dm = ToyWorldSFTDataModule(limit=12, val_limit=2, seed=0, max_length=128)
    dm.setup()
    return dm.datasets["train"].examples  # prompts masked, lengths ~20-60 tokens


class OneRank:
    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        return tensor


def build(cls, tokenizer, attn: str, **hparams):
    factory = partial(tiny_llama, tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    module = cls(model=factory, optimizer=torch.optim.SGD, **hparams)
    module.configure_model()
    module.model.config._attn_implementation = attn
    module._trainer = SimpleNamespace(strategy=OneRank(), accumulate_grad_batches=1, world_size=1,
                                      log_every_n_steps=1, global_step=0, max_steps=-1,
                                      fast_dev_run=False, should_stop=False)
    return module


def step(module, batch):
    loss, tokens, metrics = module.step(batch, "train")
    module.zero_grad()
    loss.backward()
    return loss.detach(), tokens, metrics, {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("cls, hparams, impl", [(CEModule, {}, "plain"), (GEMModule, {"beta": 0.5}, "plain"),
                                                (CEModule, {}, "chunked")])
def test_packed_batch_gives_the_unpacked_losses_and_gradients(tokenizer, documents, attn, cls, hparams, impl):
    unpacked = SFTCollator(tokenizer.pad_token_id)(documents)  # (12, T) padded, one document per row
    rows = pack_examples(documents, length=128)
    assert len(rows) < len(documents)  # several documents share a row
    packed = PackedCollator(tokenizer.pad_token_id)(rows)
    assert num_label_tokens(packed["labels"]) == num_label_tokens(unpacked["labels"])  # the same normaliser
    module = build(cls, tokenizer, attn, loss_impl=impl, **hparams)
    loss_u, tokens_u, metrics_u, grads_u = step(module, unpacked)
    loss_p, tokens_p, metrics_p, grads_p = step(module, packed)
    assert tokens_p == tokens_u
    torch.testing.assert_close(loss_p, loss_u, rtol=1e-5, atol=1e-6)
    for key in ("ce", "entropy"):
        torch.testing.assert_close(metrics_p[key], metrics_u[key], rtol=1e-5, atol=1e-6, msg=key)
    for name, grad in grads_u.items():
        torch.testing.assert_close(grads_p[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_without_positions_documents_would_see_each_other(tokenizer, documents):
    """The check above has teeth: the same packed rows with an ordinary causal mask give other losses."""
    packed = PackedCollator(tokenizer.pad_token_id)(pack_examples(documents, length=128))
    module = build(CEModule, tokenizer, "sdpa")
    with torch.no_grad():
        loss_p = module.step(packed, "val").loss
        loss_causal = module.step({k: v for k, v in packed.items() if k != "position_ids"}, "val").loss
    assert abs(loss_p - loss_causal) > 1e-3


def test_a_loss_summed_per_row_refuses_packed_rows(tokenizer, documents):
    packed = PackedCollator(tokenizer.pad_token_id)(pack_examples(documents[:4], length=128))
    module = build(ConvexModule, tokenizer, "sdpa")
    with pytest.raises(ValueError, match="ConvexModule sums its loss per row.*data.packing=false"):
        module.step(packed, "train")


def test_datamodule_packs_training_rows_only(tokenizer):
    plain = ToyWorldSFTDataModule(limit=40, val_limit=8, seed=0, max_length=128)
    packed = ToyWorldSFTDataModule(limit=40, val_limit=8, seed=0, max_length=128, packing=True)
    plain.setup(), packed.setup()
    assert len(packed.datasets["train"]) < len(plain.datasets["train"]) == 40
    assert sum(packed.label_token_counts("train")) == sum(plain.label_token_counts("train"))
    assert packed.datasets["val"].examples == plain.datasets["val"].examples
    batch = next(iter(packed.train_dataloader()))
    assert "position_ids" in batch and batch["position_ids"].shape == batch["input_ids"].shape
