"""Packed DPO (``data.packing=true`` on preference data): a batch of pairs as one padding-free row.

The standard is exactness: the packed row gives the padded batch's per-sequence log-probs, DPO loss, logged metrics
and gradient on every parameter (fp32, to rounding), for both ``loss_impl`` paths, every reference strategy, summed or
averaged log-probs, with and without the SFT term.
"""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from src.datamodules.packing import PackedPairCollator
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.losses.logprobs import IGNORE_INDEX, concat_pairs, num_label_tokens, sequence_logps
from src.losses.sequence_logps import chunked_sequence_logps
from src.modules.backbones import tiny_llama
from src.modules.dpo import DPOModule
from src.modules.pairs import pair_batch
from src.modules.reference import pair_logps

LORA = {"r": 4, "alpha": 8}
TOL = {"rtol": 1e-5, "atol": 1e-5}  # fp32: the packed sums add the same terms in another order


# --- the collator -----------------------------------------------------------------------------------------------


def test_collator_packs_chosen_then_rejected_into_one_row():
    examples = [
        {"chosen_input_ids": [1, 2, 3], "chosen_labels": [-100, 2, 3],
         "rejected_input_ids": [1, 2, 4, 5], "rejected_labels": [-100, 2, 4, 5], "index": 7, "num_items_in_batch": 9},
        {"chosen_input_ids": [6, 7], "chosen_labels": [6, 7],  # a trained first token: its label must go
         "rejected_input_ids": [6, 8, 9], "rejected_labels": [-100, 8, 9], "index": 3, "num_items_in_batch": 9},
    ]
    batch = PackedPairCollator()(examples)
    #         chosen 0   chosen 1  rejected 0     rejected 1
    assert batch["packed_input_ids"].tolist() == [[1, 2, 3, 6, 7, 1, 2, 4, 5, 6, 8, 9]]
    assert batch["packed_labels"].tolist() == [[-100, 2, 3, -100, 7, -100, 2, 4, 5, -100, 8, 9]]
    assert batch["packed_position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 1, 2]]
    assert batch["packed_sequence_ids"].tolist() == [[0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3]]
    assert batch["packed_sequence_lengths"].tolist() == [3, 2, 4, 3]
    assert batch["packed_attention_mask"].tolist() == [[1] * 12] and batch["num_documents"].tolist() == [4]  # counts
    assert batch["index"].tolist() == [7, 3] and batch["num_items_in_batch"] == 9  # passed through as padded
    pairs = pair_batch(batch)
    assert pairs.packed and pairs.attention_mask is None and pairs.num_sequences == 4
    # The per-sequence label counts are the padded rows' (the shift drops every sequence's first label).
    padded = pair_batch(ToyWorldPreferenceDataModule(num_train=1).collate_fn()(examples))
    assert pairs.label_counts().tolist() == padded.label_counts().tolist() == [2, 1, 3, 2]


def test_collator_fills_rows_of_at_most_row_length_tokens():
    examples = [
        {"chosen_input_ids": [1, 2, 3], "chosen_labels": [-100, 2, 3],
         "rejected_input_ids": [1, 2, 4, 5], "rejected_labels": [-100, 2, 4, 5]},
        {"chosen_input_ids": [6, 7], "chosen_labels": [6, 7],
         "rejected_input_ids": [6, 8, 9], "rejected_labels": [-100, 8, 9]},
    ]
    batch = PackedPairCollator(pad_token_id=0, row_length=5)(examples)
    # Best-fit decreasing of the lengths [3, 2, 4, 3] into 5: {rejected 0}, {chosen 0, chosen 1}, {rejected 1}; rows
    # padded to 5 at the end (label -100, positions restarting, sequence 0, mask 0).
    assert batch["packed_input_ids"].tolist() == [[1, 2, 4, 5, 0], [1, 2, 3, 6, 7], [6, 8, 9, 0, 0]]
    assert batch["packed_labels"].tolist() == [[-100, 2, 4, 5, -100], [-100, 2, 3, -100, 7], [-100, 8, 9, -100, -100]]
    assert batch["packed_position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1], [0, 1, 2, 0, 1]]
    assert batch["packed_sequence_ids"].tolist() == [[2, 2, 2, 2, 0], [0, 0, 0, 1, 1], [3, 3, 3, 0, 0]]
    assert batch["packed_attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1] * 5, [1, 1, 1, 0, 0]]
    assert batch["num_documents"].tolist() == [1, 2, 1]
    assert pair_batch(batch).label_counts().tolist() == [2, 1, 3, 2]


# --- the sums, on tensors ---------------------------------------------------------------------------------------


def pack_rows(rows: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Padded ``[S, T, ...]`` rows -> one ``[1, sum(lengths), ...]`` row of their unpadded prefixes."""
    return torch.cat([row[:n] for row, n in zip(rows, lengths)]).unsqueeze(0)


@pytest.mark.parametrize("average", [False, True])
def test_packed_sequence_sums_equal_the_padded_rows(average):
    """``sequence_logps`` and ``chunked_sequence_logps`` per sequence id equal them per padded row, gradients too."""
    torch.manual_seed(0)
    lengths, T, D, V = [5, 3, 6, 2], 6, 8, 11
    labels = torch.randint(0, V, (4, T))
    labels[:, :2] = IGNORE_INDEX  # a prompt
    for row, n in enumerate(lengths):
        labels[row, n:] = IGNORE_INDEX  # padding
    hidden = torch.randn(4, T, D, requires_grad=True)
    weight = torch.randn(V, D, requires_grad=True)
    sequence_ids = pack_rows(torch.arange(4).unsqueeze(1).expand(4, T), lengths)  # (1, L)
    packed_labels = pack_rows(labels, lengths)
    packed_labels[0, torch.tensor([0] + lengths[:-1]).cumsum(0)] = IGNORE_INDEX  # each sequence's first label
    per_sequence = {"sequence_ids": sequence_ids, "num_sequences": 4}
    assert num_label_tokens(packed_labels, per_row=True, **per_sequence).tolist() == \
        num_label_tokens(labels, per_row=True).tolist()

    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])  # distinct per-sequence gradients
    plain = sequence_logps(hidden @ weight.T, labels, average=average)
    grads = torch.autograd.grad((plain * weights).sum(), (hidden, weight))
    packed_hidden = pack_rows(hidden, lengths)
    for got in (sequence_logps(packed_hidden @ weight.T, packed_labels, average=average, **per_sequence),
                chunked_sequence_logps(packed_hidden, packed_labels, weight, None, 4, average, **per_sequence)):
        torch.testing.assert_close(got, plain, **TOL)
        packed_grads = torch.autograd.grad((got * weights).sum(), (hidden, weight))
        for name, g, want in zip(("hidden", "weight"), packed_grads, grads):
            torch.testing.assert_close(g, want, **TOL, msg=name)


# --- the DPO step on a tiny Llama -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dm():
    dm = ToyWorldPreferenceDataModule(num_train=24, num_val=8, batch_size=4, packing=True)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def examples(dm):
    examples = [dict(ex, num_items_in_batch=150) for ex in dm.datasets["train"].examples[:4]]  # a window's count
    lengths = {len(ex[f"{side}_input_ids"]) for ex in examples for side in ("chosen", "rejected")}
    assert len(lengths) > 2  # sequences of different lengths: the padded batch does pad
    return examples


class OneRank:
    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        return tensor


def make_module(dm, reference: str, tmp_path, **hparams) -> DPOModule:
    """A DPO module whose policy has moved off its reference (else every pair's loss is ln 2)."""
    lora = LORA if reference == "adapter" else None
    factory = partial(tiny_llama, dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2, lora=lora)
    module = DPOModule(model=factory, optimizer=torch.optim.SGD, reference=reference, beta=0.5,
                       reference_cache_dir=str(tmp_path), **hparams)
    torch.manual_seed(0)
    module.configure_model()
    if reference == "precomputed":  # the unpacked table, as before a run, keyed by ``index``
        splits = {split: dm.datasets[split].examples for split in ("train", "val")}
        module.reference.prepare(module.model, splits, dm.collate_fn(), batch_size=3)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if lora is None:
                p.add_(0.05 * torch.randn_like(p))
            elif "lora_B" in name:  # 0 at init: the adapters start as a no-op
                p.normal_(std=0.2)
    module._trainer = SimpleNamespace(strategy=OneRank(), accumulate_grad_batches=1, world_size=1,
                                      log_every_n_steps=1, global_step=0, max_steps=-1,
                                      fast_dev_run=False, should_stop=False)  # num_items_in_batch counts
    return module


def train_step(module, batch):
    loss, tokens, metrics = module.step(batch, "train")
    module.zero_grad()
    loss.backward()
    return loss.detach(), tokens, metrics, {n: p.grad.clone() for n, p in module.named_parameters()
                                            if p.requires_grad}


@pytest.mark.parametrize("sft_weight", [0.0, 0.5])
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("reference", ["copy", "adapter", "precomputed"])
@pytest.mark.parametrize("loss_impl", ["plain", "chunked"])
@pytest.mark.parametrize("rows", ["one", "bounded"])
def test_packed_batch_gives_the_padded_loss_metrics_and_gradients(dm, examples, tmp_path, rows, loss_impl, reference,
                                                                   average, sft_weight):
    padded = dm.collate_fn()(examples)
    if rows == "one":  # data.max_length holds the whole batch
        packed = dm.train_collate_fn()(examples)
        assert "packed_input_ids" in packed and packed["packed_input_ids"].shape[0] == 1
        assert packed["packed_input_ids"].numel() < padded["chosen_input_ids"].numel() * 2  # no padding
    else:  # rows that hold the longest and the shortest sequence: several rows, some padded at the end
        lengths = [len(ex[f"{side}_input_ids"]) for ex in examples for side in ("chosen", "rejected")]
        packed = PackedPairCollator(dm.tokenizer.pad_token_id, max(lengths) + min(lengths))(examples)
        assert (packed["packed_attention_mask"] == 0).any()
        assert 1 < packed["packed_input_ids"].shape[0] < 2 * len(examples)
    module = make_module(dm, reference, tmp_path, loss_impl=loss_impl, average_logps=average, sft_weight=sft_weight)

    with torch.no_grad():  # the per-sequence log-probs, policy and reference
        for got, want in zip(pair_logps(module.model, packed, average), pair_logps(module.model, padded, average)):
            torch.testing.assert_close(got, want, **TOL)
        for got, want in zip(module.reference.logps(packed, "train"), module.reference.logps(padded, "train")):
            torch.testing.assert_close(got, want, **TOL)
    loss_p, tokens_p, metrics_p, grads_p = train_step(module, packed)
    loss_u, tokens_u, metrics_u, grads_u = train_step(module, padded)
    assert abs(float(loss_u) - math.log(2)) > 1e-4  # the policy is off its reference (ln 2 at equality)
    torch.testing.assert_close(loss_p, loss_u, **TOL)
    assert tokens_p == tokens_u
    assert metrics_p.keys() == metrics_u.keys() and "logits/chosen" in metrics_u
    for key, value in metrics_u.items():
        torch.testing.assert_close(metrics_p[key], value, **TOL, msg=lambda m, key=key: f"{key}: {m}")
    assert grads_p.keys() == grads_u.keys()
    for name, grad in grads_u.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads_p[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_without_restarting_positions_sequences_would_see_each_other(dm, examples, tmp_path):
    """The check above has teeth: the packed row with positions 0..L-1 (one document to the model, a plain causal
    mask across sequences) gives another loss."""
    padded, packed = dm.collate_fn()(examples), dm.train_collate_fn()(examples)
    module = make_module(dm, "copy", tmp_path)
    crossing = dict(packed, packed_position_ids=torch.arange(packed["packed_input_ids"].shape[1]).unsqueeze(0))
    with torch.no_grad():
        loss_u, loss_p, loss_x = (module.step(b, "val").loss for b in (padded, packed, crossing))
    torch.testing.assert_close(loss_p, loss_u, **TOL)
    assert abs(loss_x - loss_u) > 1e-3


def test_a_module_that_sums_per_row_refuses_packed_pairs(dm, examples, tmp_path):
    class PerRow(DPOModule):
        supports_packing = False

    factory = partial(tiny_llama, dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    module = PerRow(model=factory, optimizer=torch.optim.SGD)
    module.configure_model()
    with pytest.raises(ValueError, match="PerRow sums per row.*data.packing=false"):
        module.step(dm.train_collate_fn()(examples), "train")


def test_only_the_training_loader_packs(dm):
    train, val = next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))
    assert "packed_input_ids" in train and train["index"].shape == (4,) and "num_items_in_batch" in train
    assert "chosen_input_ids" in val and "packed_input_ids" not in val
    unpacked = ToyWorldPreferenceDataModule(num_train=24, num_val=8, batch_size=4)
    unpacked.setup("fit")
    assert "chosen_input_ids" in next(iter(unpacked.train_dataloader()))
    torch.testing.assert_close(concat_pairs(val["chosen_input_ids"], val["rejected_input_ids"]),
                               pair_batch(val).input_ids)
