"""DPOModule on a tiny Llama: the reference strategies agree, limit identities, the cache, checkpoints, learning."""

from __future__ import annotations

import csv
import math
from functools import partial

import lightning as L
import pytest
import torch

import src.modules.reference as reference_lib
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.losses.ce import ce_loss
from src.losses.dpo import dpo_loss
from src.losses.logprobs import sequence_logps
from src.modules.backbones import tiny_llama
from src.modules.dpo import DPOModule
from src.modules.dpo_step import reference_logps
from src.modules.reference import FrozenCopy, pair_logps
from tests.helpers import TINY, compose_cfg

LORA = {"r": 4, "alpha": 8}


@pytest.fixture(scope="module")
def dm():
    dm = ToyWorldPreferenceDataModule(num_train=24, num_val=8, batch_size=4, eval_batch_size=8)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def batch(dm):
    return next(iter(dm.val_dataloader()))


def make_module(tokenizer, lora=None, seed=0, lr=1e-3, **kwargs) -> DPOModule:
    factory = partial(tiny_llama, tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=seed, lora=lora)
    module = DPOModule(model=factory, optimizer=partial(torch.optim.AdamW, lr=lr), **kwargs)
    torch.manual_seed(0)  # LoRA's A matrices come from the global RNG; B starts at 0 whatever it is
    module.configure_model()
    return module


def fit(module, dm, tmp_path, steps, ckpt_path=None, **kwargs) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, **kwargs)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


def prepare(module, dm, batch_size=3):
    """The precompute pass on both splits, at a batch size unlike the loaders' (padding must not matter)."""
    splits = {split: dm.datasets[split].examples for split in ("train", "val")}
    module.reference.prepare(module.model, splits, dm.collate_fn(), batch_size)


# --- the three strategies give the same reference ------------------------------------------------------------------


@pytest.mark.parametrize("average", [False, True])
def test_copy_adapter_and_precomputed_references_agree(dm, batch, tmp_path, average):
    base = tiny_llama(dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2)  # the weights every LoRA wraps
    expected = pair_logps(base, batch, average)
    copy_of_plain = make_module(dm.tokenizer, reference="copy", average_logps=average)
    copy_of_lora = make_module(dm.tokenizer, LORA, reference="copy", average_logps=average)
    adapter = make_module(dm.tokenizer, LORA, reference="adapter", average_logps=average)
    precomputed = make_module(dm.tokenizer, reference="precomputed", average_logps=average,
                              reference_cache_dir=str(tmp_path))
    prepare(precomputed, dm)
    for module in (copy_of_plain, copy_of_lora, adapter, precomputed):
        for got, want in zip(reference_logps(module.reference, batch, "val"), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

    with torch.no_grad():  # train the adapter a little: the policy moves, its adapter-off reference must not
        for name, p in adapter.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    adapter.model.train()
    torch.testing.assert_close(reference_logps(adapter.reference, batch, "val")[0], expected[0], rtol=0, atol=1e-5)
    assert adapter.model.training  # the reference pass runs in eval mode and restores the policy's mode
    assert not torch.allclose(pair_logps(adapter.model, batch, average)[0], expected[0], atol=1e-3)


@pytest.mark.parametrize("kind", ["copy", "adapter", "precomputed"])
def test_policy_equal_to_reference_gives_ln2_through_the_module(dm, batch, tmp_path, kind):
    module = make_module(dm.tokenizer, LORA if kind == "adapter" else None, reference=kind,
                         reference_cache_dir=str(tmp_path))
    if kind == "precomputed":
        prepare(module, dm)
    module.train()  # the policy's train mode (no dropout in the tiny Llama) against the reference's eval mode
    loss, _, metrics = module.step(batch, "val")
    torch.testing.assert_close(loss, torch.tensor(math.log(2.0)), rtol=0, atol=1e-6)
    torch.testing.assert_close(metrics["rewards/margins"], torch.tensor(0.0), rtol=0, atol=1e-6)
    assert metrics["rewards/accuracies"] == 0  # ties count as wrong (XRIGHT, TRL)


# --- the precomputed table: one pass, cached, reused ----------------------------------------------------------------


def test_precomputed_reference_is_cached_and_reused(dm, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    counting = lambda *args, **kwargs: calls.append(1) or pair_logps(*args, **kwargs)  # noqa: E731
    monkeypatch.setattr(reference_lib, "pair_logps", counting)

    first = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(cache))
    fit(first, dm, tmp_path, steps=2)
    assert len(calls) == math.ceil(24 / 8) + 1  # one no-grad pass over 24 train + 8 val pairs at eval_batch_size 8
    assert len(list(cache.glob("*.pt"))) == 2  # one table per split
    policy_params = sum(p.numel() for p in tiny_llama(dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2)
                        .parameters())
    assert sum(p.numel() for p in first.parameters()) == policy_params  # no reference model held

    calls.clear()
    second = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(cache))
    fit(second, dm, tmp_path, steps=2)
    assert calls == [] and second.reference.computed_batches == 0  # no reference forward at all
    for split in ("train", "val"):
        assert torch.equal(second.reference.tables[split], first.reference.tables[split])

    mean = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(cache), average_logps=True)
    fit(mean, dm, tmp_path, steps=1)
    assert mean.reference.computed_batches > 0 and len(list(cache.glob("*.pt"))) == 4  # the flag is in the key


def test_precomputed_cache_is_keyed_by_the_initial_model(dm, tmp_path):
    """Two initial models on the same data: two cache files, and the second never reads the first one's table."""
    first, second = (make_module(dm.tokenizer, seed=seed, reference="precomputed", reference_cache_dir=str(tmp_path))
                     for seed in (0, 1))
    examples = dm.datasets["val"].examples
    assert first.reference.cache_path(examples, "") != second.reference.cache_path(examples, "")
    prepare(first, dm)
    prepare(second, dm)
    assert second.reference.computed_batches > 0 and len(list(tmp_path.glob("*.pt"))) == 4
    assert not torch.allclose(second.reference.tables["val"], first.reference.tables["val"])


def test_precomputed_cache_key_covers_the_rejected_side(dm, tmp_path):
    """Datasets that differ only in a rejected response (its ids, or only which of its tokens are trained) differ
    in their reference log-probs, so they must not share a cache entry."""
    reference = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(tmp_path)).reference
    examples = dm.datasets["val"].examples
    other_ids = [dict(ex) for ex in examples]
    ids = examples[0]["rejected_input_ids"]
    other_ids[0]["rejected_input_ids"] = ids[:-1] + [ids[-1] + 1]  # another last token
    labels = list(examples[0]["rejected_labels"])
    labels[next(i for i, label in enumerate(labels) if label != -100)] = -100
    other_mask = [dict(ex) for ex in examples]
    other_mask[0]["rejected_labels"] = labels
    keys = {reference.cache_path(data, "") for data in (examples, other_ids, other_mask)}
    assert len(keys) == 3


# --- the optional SFT term ------------------------------------------------------------------------------------------


def test_sft_weight_adds_the_chosen_ce(dm, batch):
    plain, mixed = make_module(dm.tokenizer), make_module(dm.tokenizer, sft_weight=0.5)
    out_plain, out_mixed = plain.step(batch, "val").metrics, mixed.step(batch, "val").metrics
    with torch.no_grad():
        ce = ce_loss(plain(batch["chosen_input_ids"], batch["chosen_attention_mask"]), batch["chosen_labels"])
    torch.testing.assert_close(out_plain["ce"], ce)
    torch.testing.assert_close(out_mixed["loss"] - out_plain["loss"], 0.5 * ce)


def test_average_logps_trains_on_length_averaged_logps(dm, batch):
    """The module's loss is ``dpo_loss`` on per-token mean log-probs of the policy and the initial model (computed
    here side by side, without the module's plumbing), and differs from the loss on summed log-probs."""
    module = make_module(dm.tokenizer, average_logps=True, beta=2.0)
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy off its reference, or every loss is ln 2
        for p in module.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    initial = tiny_llama(dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2)  # make_module's seed-0 weights

    def logps(model, side, average):
        logits = model(input_ids=batch[f"{side}_input_ids"], attention_mask=batch[f"{side}_attention_mask"]).logits
        return sequence_logps(logits, batch[f"{side}_labels"], average=average)

    with torch.no_grad():
        loss = module.step(batch, "val").loss
        expected = {average: dpo_loss(*(logps(m, side, average) for m in (module.model, initial)
                                        for side in ("chosen", "rejected")), beta=2.0)[0].mean()
                    for average in (True, False)}
    torch.testing.assert_close(loss, expected[True], rtol=0, atol=1e-5)
    assert abs(expected[True] - expected[False]) > 1e-2


def test_gradient_accumulation_does_not_change_the_update(tmp_path):
    """2 micro-batches of 4 pairs and 1 batch of 8 give the same SGD step: the DPO mean is per pair, and the SFT
    term's token mean is normalised over the accumulation window (``num_items_in_batch``)."""
    updated = []
    for batch_size, accumulate in ((8, 1), (4, 2)):
        data = ToyWorldPreferenceDataModule(num_train=16, num_val=4, batch_size=batch_size)
        module = make_module(data.tokenizer, sft_weight=1.0)
        module.optimizer_factory = partial(torch.optim.SGD, lr=1.0)
        fit(module, data, tmp_path, steps=1, accumulate_grad_batches=accumulate, enable_checkpointing=False)
        updated.append(module.model.state_dict())
    initial = make_module(ToyWorldPreferenceDataModule(num_train=4).tokenizer).model.state_dict()
    assert not torch.equal(updated[0]["lm_head.weight"], initial["lm_head.weight"])  # the step did move the weights
    for key, value in updated[0].items():
        torch.testing.assert_close(updated[1][key], value, rtol=1e-5, atol=1e-6)


# --- configuration errors name the key ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, key", [
    ({"loss_type": "simpo", "reference": "copy"}, r"module\.reference='copy'"),
    ({"loss_type": "sigmoid", "reference": "none"}, r"module\.reference='none'"),
    ({"reference": "frozen"}, r"module\.reference='frozen' is not a valid choice"),
    ({"loss_type": "ipo", "label_smoothing": 0.1}, r"module\.label_smoothing"),
    ({"beta": 0.0}, r"module\.beta"),
    ({"sft_weight": -1.0}, r"module\.sft_weight"),
])
def test_bad_config_names_the_key(dm, kwargs, key):
    with pytest.raises(ValueError, match=key):
        DPOModule(model=partial(tiny_llama, dm.tokenizer), optimizer=torch.optim.AdamW, **kwargs)


def test_adapter_reference_needs_a_lora_model(dm):
    with pytest.raises(ValueError, match=r"module\.reference='adapter' needs a peft LoRA"):
        make_module(dm.tokenizer, reference="adapter")


# --- checkpoints: no second model saved, the same reference back on resume -------------------------------------------


def test_copy_reference_is_not_saved_and_comes_back_identical(dm, tmp_path):
    first = make_module(dm.tokenizer, reference="copy")
    initial = {k: v.clone() for k, v in first.reference.model.state_dict().items()}
    fit(first, dm, tmp_path, steps=2)
    ckpt = tmp_path / "two.ckpt"
    first.trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert not any(k.startswith("reference.") for k in saved["state_dict"])  # one model per checkpoint
    assert saved["reference"]["fingerprint"] == first.reference.fingerprint

    resumed = make_module(dm.tokenizer, reference="copy")
    fit(resumed, dm, tmp_path, steps=3, ckpt_path=ckpt)  # strict loading passes without reference keys
    assert isinstance(resumed.reference, FrozenCopy)
    for key, value in resumed.reference.model.state_dict().items():
        assert torch.equal(value, initial[key])
    assert not torch.equal(resumed.model.state_dict()["lm_head.weight"], initial["lm_head.weight"])  # policy trained

    other_init = make_module(dm.tokenizer, seed=1, reference="copy")
    with pytest.raises(RuntimeError, match="rebuilt reference differs"):
        fit(other_init, dm, tmp_path, steps=3, ckpt_path=ckpt)


def test_precomputed_table_rides_in_the_checkpoint(dm, tmp_path):
    first = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(tmp_path / "a"))
    fit(first, dm, tmp_path, steps=2)
    ckpt = tmp_path / "two.ckpt"
    first.trainer.save_checkpoint(ckpt)

    resumed = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(tmp_path / "empty"))
    fit(resumed, dm, tmp_path, steps=3, ckpt_path=ckpt)
    assert resumed.reference.computed_batches == 0  # the trained policy is never used as the reference
    assert torch.equal(resumed.reference.tables["train"], first.reference.tables["train"])

    state = torch.load(ckpt, weights_only=False)
    del state["reference"]
    torch.save(state, tmp_path / "no_table.ckpt")
    orphan = make_module(dm.tokenizer, reference="precomputed", reference_cache_dir=str(tmp_path / "empty2"))
    with pytest.raises(RuntimeError, match="cannot be recomputed"):
        fit(orphan, dm, tmp_path, steps=3, ckpt_path=tmp_path / "no_table.ckpt")


# --- learning -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dpo_toy_experiment_raises_preference_accuracy(tmp_path):
    """The shipped ``experiment=dpo_toy`` (from scratch, 300 steps), with the precomputed reference for speed."""
    import train

    overrides = ["experiment=dpo_toy", *TINY, "callbacks=none", "trainer.val_check_interval=300",
                 "++module.reference=precomputed", f"++module.reference_cache_dir={tmp_path / 'cache'}"]
    cfg = compose_cfg(overrides, tmp_path)
    train.train(cfg)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        val = [row for row in csv.DictReader(f) if row.get("val/loss")]
    before, after = val[0], val[-1]  # validate_before_fit, then step 300
    assert float(before["val/rewards/accuracies"]) == 0 and float(before["val/loss"]) == pytest.approx(math.log(2))
    assert float(after["val/rewards/accuracies"]) > 0.8, after
    assert float(after["val/rewards/margins"]) > 1.0 and float(after["val/loss"]) < 0.4, after
