"""GEM, EMO and convex modules on a tiny Llama: they learn, their options do what they say, and they are invariant
to gradient accumulation where their official trainers normalise over the global batch."""

from __future__ import annotations

import csv
from functools import partial

import pytest
import torch
from lightning.pytorch import Trainer
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from src.datamodules.collate import pad_batch
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.modules.backbones import tiny_llama
from src.modules.convex import ConvexModule
from src.modules.emo import EMOModule
from src.modules.gem import GEMModule


def tiny(tokenizer, seed: int = 0):
    return partial(tiny_llama, tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=seed)


def build(cls, tokenizer, seed: int = 0, lr: float = 1e-2, **hparams):
    module = cls(model=tiny(tokenizer, seed), optimizer=partial(torch.optim.AdamW, lr=lr), **hparams)
    module.configure_model()
    return module


@pytest.fixture(scope="module")
def batch(tokenizer):
    dm = ToyWorldSFTDataModule(limit=8, val_limit=2, seed=0)
    dm.setup()
    return pad_batch(dm.datasets["train"].examples, tokenizer.pad_token_id)  # (8, T), prompts masked with -100


def fit_batch(module, batch, steps: int) -> list[tuple[float, float]]:
    """Plain optimisation on one batch, without a Trainer; returns (loss, true CE) per step."""
    optimizer = module.configure_optimizers()
    history = []
    for _ in range(steps):
        loss, _, metrics = module.step(batch, "train")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((float(metrics["loss"]), float(metrics["ce"])))
    return history


def head(module) -> torch.Tensor:
    return module.model.get_output_embeddings().weight


@pytest.mark.parametrize("cls, hparams", [
    (GEMModule, {}),
    (GEMModule, {"beta": 0.3, "h": "logsigmoid"}),
    (EMOModule, {}),
    (EMOModule, {"mix": "emo1", "cost_embedding": "adaptive", "ratio_clamp": 3.0}),
    (ConvexModule, {}),
    (ConvexModule, {"order": 2.0, "label_smoothing": 0.1, "reduction": "sentence"}),
], ids=["gem", "gem-logsigmoid", "emo2-fixed", "emo1-adaptive", "convex", "convex-sentence"])
def test_objective_learns_a_batch(cls, hparams, tokenizer, batch):
    history = fit_batch(build(cls, tokenizer, **hparams), batch, steps=12)
    (loss0, ce0), (loss1, ce1) = history[0], history[-1]
    assert all(map(torch.isfinite, torch.tensor(history).flatten()))
    assert ce1 < 0.8 * ce0, history
    assert loss1 < loss0, history


def test_emo_fixed_cost_is_the_initial_head_and_survives_a_resume(tokenizer, batch):
    module = build(EMOModule, tokenizer, cost_embedding="fixed")
    initial = head(module).detach().clone()
    fit_batch(module, batch, steps=2)
    assert not torch.equal(head(module), initial)  # the head trained ...
    assert torch.equal(module.cost_matrix(), initial)  # ... the cost did not
    assert not module.cost_matrix().requires_grad
    # A resumed run rebuilds the backbone (here deliberately with other weights), then loads the checkpoint:
    resumed = build(EMOModule, tokenizer, seed=1, cost_embedding="fixed")
    assert not torch.equal(resumed.cost_matrix(), initial)
    resumed.load_state_dict(module.state_dict())
    assert torch.equal(resumed.cost_matrix(), initial)


def test_emo_adaptive_cost_follows_the_live_head(tokenizer, batch):
    module = build(EMOModule, tokenizer, cost_embedding="adaptive")
    initial = head(module).detach().clone()
    fit_batch(module, batch, steps=2)
    assert torch.equal(module.cost_matrix(), head(module)) and not torch.equal(module.cost_matrix(), initial)
    assert not module.cost_matrix().requires_grad
    assert "cost_embedding" not in module.state_dict()


def test_emo_external_cost_loads_another_models_head(tokenizer, assets, tmp_path):
    donor = AutoModelForCausalLM.from_pretrained(assets["model"]).get_output_embeddings().weight.detach()
    from_dir = build(EMOModule, tokenizer, seed=1, cost_embedding="external", cost_embedding_path=str(assets["model"]))
    torch.testing.assert_close(from_dir.cost_matrix(), donor)
    assert not torch.equal(from_dir.cost_matrix(), head(from_dir))  # not this model's head
    torch.save(donor * 2, tmp_path / "head.pt")
    from_file = build(EMOModule, tokenizer, cost_embedding="external", cost_embedding_path=str(tmp_path / "head.pt"))
    torch.testing.assert_close(from_file.cost_matrix(), donor * 2)


def test_emo_external_cost_with_another_vocabulary_is_refused(tokenizer, tmp_path):
    vocab = len(tokenizer)
    torch.save(torch.randn(vocab + 1, 8), tmp_path / "head.pt")
    with pytest.raises(ValueError, match=rf"module\.cost_embedding_path=.*V={vocab}"):
        build(EMOModule, tokenizer, cost_embedding="external", cost_embedding_path=str(tmp_path / "head.pt"))
    config = LlamaConfig(vocab_size=vocab - 5, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match=r"must share this tokenizer"):
        build(EMOModule, tokenizer, cost_embedding="external", cost_embedding_path=str(tmp_path / "other"))


@pytest.mark.parametrize("cls, hparams, key", [
    (GEMModule, {"beta": 0.0}, "module.beta"),
    (GEMModule, {"h": "cubic"}, "module.h"),
    (GEMModule, {"logsigmoid_scale": -1.0}, "module.logsigmoid_scale"),
    (EMOModule, {"mix": "emo3"}, "module.mix"),
    (EMOModule, {"ratio_clamp": 3.0}, "module.ratio_clamp"),  # only emo1 is clamped
    (EMOModule, {"cost_embedding": "frozen"}, "module.cost_embedding"),
    (EMOModule, {"cost_embedding": "external"}, "module.cost_embedding_path"),
    (EMOModule, {"cost_embedding_path": "head.pt"}, "module.cost_embedding_path"),
    (ConvexModule, {"order": 0.0}, "module.order"),
    (ConvexModule, {"label_smoothing": 1.0}, "module.label_smoothing"),
    (ConvexModule, {"reduction": "sequence"}, "module.reduction"),
    (ConvexModule, {"ce_warmup_steps": -1}, "module.ce_warmup_steps"),
])
def test_bad_hyperparameter_names_its_key(cls, hparams, key, tokenizer):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        cls(model=tiny(tokenizer), optimizer=torch.optim.AdamW, **hparams)


def quiet_trainer(tmp_path, **kwargs) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, default_root_dir=tmp_path, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                   num_sanity_val_steps=0, **kwargs)


def test_convex_warm_start_trains_ce_then_switches(tokenizer, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    dm = ToyWorldSFTDataModule(limit=16, val_limit=2, batch_size=4, seed=0)
    module = ConvexModule(model=tiny(tokenizer), optimizer=partial(torch.optim.AdamW, lr=1e-3), ce_warmup_steps=2)
    trainer = quiet_trainer(tmp_path, max_steps=4, log_every_n_steps=1, logger=CSVLogger(tmp_path, name="csv"))
    trainer.fit(module, datamodule=dm)
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/phase")]
    assert [float(r["train/phase"]) for r in rows] == [0.0, 0.0, 1.0, 1.0]
    for r in rows[:2]:  # the CE phase's loss is the CE ...
        assert float(r["train/loss"]) == pytest.approx(float(r["train/ce"]), rel=1e-5)
    for r in rows[2:]:  # ... then the convex value -p(y)^(1/L), in [-1, 0]
        assert -1.0 <= float(r["train/loss"]) <= 0.0


def one_update(tokenizer, tmp_path, batch_size: int, accumulate: int, global_norm: bool = True):
    """Parameter change of one SGD step (lr 1, so it is minus the gradient) over the same 8 examples."""
    dm = ToyWorldSFTDataModule(limit=8, val_limit=2, batch_size=batch_size, seed=0)
    module = GEMModule(model=tiny(tokenizer), optimizer=partial(torch.optim.SGD, lr=1.0))
    if not global_norm:  # the v1 trainer's per-micro-batch mean, to show the test can tell the difference
        module.token_denominator = lambda batch: None
    module.configure_model()
    before = [p.detach().clone() for p in module.parameters()]
    quiet_trainer(tmp_path, max_steps=1, accumulate_grad_batches=accumulate, logger=False).fit(module, datamodule=dm)
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(module.parameters(), before)])


def test_gem_gradient_accumulation_matches_one_large_batch(tokenizer, tmp_path):
    full = one_update(tokenizer, tmp_path, batch_size=8, accumulate=1)
    accumulated = one_update(tokenizer, tmp_path, batch_size=4, accumulate=2)
    torch.testing.assert_close(accumulated, full, rtol=1e-4, atol=1e-7)
    per_micro_batch = one_update(tokenizer, tmp_path, batch_size=4, accumulate=2, global_norm=False)
    assert not torch.allclose(per_micro_batch, full, rtol=1e-3, atol=1e-6)
