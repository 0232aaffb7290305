"""InterleaveModule + InterleaveScheduler on a tiny Llama: streams, accumulation windows, Mix, probes, resume."""

from __future__ import annotations

import math
import random
from functools import partial
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from src.callbacks.interleave_scheduler import InterleaveScheduler
from src.datamodules.interleave_streams import InterleaveDataModule
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.interleave.schedules import Alright, MaxRight, Mix
from src.modules.backbones import tiny_llama
from src.modules.interleave import InterleaveModule

SFT_BATCH, PAIR_BATCH = 4, 2


def make_dm() -> InterleaveDataModule:
    return InterleaveDataModule(
        ToyWorldSFTDataModule(num_train=24, num_val=8, batch_size=SFT_BATCH, eval_batch_size=8, seed=0),
        ToyWorldPreferenceDataModule(num_train=16, num_val=6, batch_size=PAIR_BATCH, eval_batch_size=6, seed=0))


def make_module(tokenizer, **kwargs) -> InterleaveModule:
    factory = partial(tiny_llama, tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    return InterleaveModule(model=factory, optimizer=partial(torch.optim.AdamW, lr=1e-3), **kwargs)


def fit(module, dm, steps, callbacks=(), tmp_path=None, ckpt_path=None, **kwargs) -> L.Trainer:
    kwargs.setdefault("limit_val_batches", 0)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=tmp_path is not None,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, callbacks=list(callbacks), **kwargs)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


class Record(Callback):
    """The weights each micro-batch trained on, and the training loss Lightning got back."""

    def __init__(self):
        self.weights, self.losses = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(dict(pl_module.window_weights))
        self.losses.append(float(outputs["loss"]))

    def objectives(self) -> list[str]:
        return ["+".join(sorted(w)) for w in self.weights]


@pytest.fixture
def dm():
    return make_dm()


@pytest.mark.parametrize("default", ["sft", "dpo"])
def test_module_runs_without_the_callback(dm, default):
    module = make_module(make_dm().sources["sft"].tokenizer, default_objective=default)
    record = Record()
    fit(module, dm, steps=3, callbacks=[record])
    assert record.objectives() == [default] * 3
    other = "dpo" if default == "sft" else "sft"
    size = SFT_BATCH if default == "sft" else PAIR_BATCH
    assert dm.streams[default].consumed == 3 * size and dm.streams[other].consumed == 0


def test_streams_advance_only_when_used(dm):
    module, record = make_module(dm.tokenizer), Record()
    fit(module, dm, steps=8, callbacks=[InterleaveScheduler(Alright(lam=0.5, seed=1)), record])
    counts = {obj: record.objectives().count(obj) for obj in ("sft", "dpo")}
    assert 0 < counts["sft"] < 8  # both objectives were picked
    assert dm.streams["sft"].consumed == counts["sft"] * SFT_BATCH
    assert dm.streams["dpo"].consumed == counts["dpo"] * PAIR_BATCH


class Meddler(Callback):
    """Requests a random objective before *every* micro-batch, i.e. also inside accumulation windows."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.request({random.choice(["sft", "dpo"]): 1.0})


@pytest.mark.parametrize("scheduler", ["alright", "meddler"])
def test_accumulation_windows_never_switch_objective(dm, scheduler):
    random.seed(0)
    callback = InterleaveScheduler(Alright(lam=0.5, seed=2)) if scheduler == "alright" else Meddler()
    record = Record()
    fit(make_module(dm.tokenizer), dm, steps=6, callbacks=[callback, record], accumulate_grad_batches=3)
    chosen = record.objectives()
    assert len(chosen) == 18
    windows = [chosen[i:i + 3] for i in range(0, 18, 3)]
    assert all(len(set(w)) == 1 for w in windows), windows
    assert len({w[0] for w in windows}) == 2  # and the choice did change between windows
    assert dm.streams["sft"].consumed == sum(w[0] == "sft" for w in windows) * 3 * SFT_BATCH


def test_mix_trains_the_weighted_sum_in_one_backward(dm):
    module, record = make_module(dm.tokenizer), Record()
    logged = {}

    class Logged(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    fit(module, dm, steps=1, callbacks=[InterleaveScheduler(Mix(lam=0.25)), record, Logged()])
    assert record.weights == [{"sft": 0.75, "dpo": 0.25}]
    assert record.losses[0] == pytest.approx(0.75 * logged["train/sft_loss"] + 0.25 * logged["train/dpo_loss"])
    assert logged["train/dpo_loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at step 0
    assert (dm.streams["sft"].consumed, dm.streams["dpo"].consumed) == (SFT_BATCH, PAIR_BATCH)
    assert logged["schedule/is_sft"] == logged["schedule/is_dpo"] == 1.0 and logged["cost/mix_seconds"] > 0


def test_validation_logs_both_held_out_losses(dm):
    module = make_module(dm.tokenizer)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=dm, verbose=False)
    flat = {k: v for m in metrics for k, v in m.items()}
    assert flat["val/dpo_loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == its frozen copy
    assert flat["val/sft_loss"] == pytest.approx(flat["val/ce"], rel=1e-5)  # both token-weighted
    assert {"val/rewards/margins", "val/sft_entropy", "val/ppl"} <= set(flat)


def test_maxright_probes_held_out_batches_in_eval_mode(dm):
    module, record = make_module(dm.tokenizer), Record()
    probes = []
    original = module.probe_losses

    def spy(batches):
        out = original(batches)
        probes.append((module.trainer.global_step, module.training))
        return out

    module.probe_losses = spy
    scheduler = InterleaveScheduler(MaxRight(lam=0.5, refresh_every=3))
    fit(module, dm, steps=7, callbacks=[scheduler, record])
    assert [step for step, _ in probes] == [0, 3, 6]
    assert all(training for _, training in probes)  # eval mode inside, train mode restored afterwards
    counts = {obj: record.objectives().count(obj) for obj in ("sft", "dpo")}
    assert dm.streams["sft"].consumed == counts["sft"] * SFT_BATCH  # probes never touch the training streams
    assert dm.streams["dpo"].consumed == counts["dpo"] * PAIR_BATCH
    assert scheduler.steps == counts


def dropout_llama(tokenizer):
    """The tiny Llama with attention dropout, so a train-mode forward is random and differs from an eval one."""
    model = tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    return model


def test_probe_losses_are_eval_mode_losses(dm):
    """MAXRIGHT compares probe values across steps: they must be the deterministic eval-mode losses, and probing must
    leave the module in the mode it found it in."""
    dm.setup("fit")
    batches = dm.probe_batches()
    module = InterleaveModule(model=partial(dropout_llama, dm.tokenizer), optimizer=torch.optim.AdamW)
    module.configure_model()
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(batch_to_device=lambda batch: batch))  # no Trainer
    with torch.no_grad():
        module.eval()
        expected = {obj: torch.stack([module.step(b, "val").loss for b in group]).mean()
                    for obj, group in batches.items()}
        module.train()
        noisy = module.step(batches["sft"][0], "val").loss
    assert not torch.allclose(noisy, expected["sft"])  # dropout is on in train mode, so the test can tell
    for _ in range(2):
        probed = module.probe_losses(batches)
        assert module.training
        for obj in ("sft", "dpo"):
            torch.testing.assert_close(probed[obj], expected[obj], rtol=0, atol=1e-6)
    module.eval()
    module.probe_losses(batches)
    assert not module.training


def test_probe_reuses_the_reference_log_probs_and_skips_diagnostics(dm, monkeypatch):
    """The reference's probe log-probs are computed once per run and reused exactly after the policy moves; a probe
    computes losses only (no entropy or mean-logit pass)."""
    dm.setup("fit")
    batches = dm.probe_batches()
    module = make_module(dm.tokenizer)
    module.configure_model()
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(batch_to_device=lambda batch: batch))  # no Trainer
    calls = []
    original = module.reference.logps
    module.reference.logps = lambda batch, split: calls.append(split) or original(batch, split)
    module.probe_losses(batches)
    with torch.no_grad():  # the policy moves away from its frozen copy, as after training steps
        for p in module.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for name in ("predictive_entropy", "chunked_ce_and_entropy"):
        monkeypatch.setattr(f"src.losses.head_outputs.{name}",
                            lambda *a, **k: pytest.fail("a probe computed diagnostics"))
    monkeypatch.setattr("src.modules.dpo_step.mean_response_logits",
                        lambda *a, **k: pytest.fail("a probe computed diagnostics"))
    probed = module.probe_losses(batches)
    assert calls == ["val"] * len(batches["dpo"])  # the second probe asked the reference nothing
    monkeypatch.undo()
    module.eval()
    with torch.no_grad():
        expected = torch.stack([module.step(b, "val").loss for b in batches["dpo"]]).mean()
    torch.testing.assert_close(probed["dpo"], expected, rtol=0, atol=0)
    assert abs(float(expected) - math.log(2)) > 1e-3  # the policy did move, so a stale policy value would show


class Stop(Exception):
    pass


class KillAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Stop  # like a SIGKILL: the last checkpoint is what remains


@pytest.mark.parametrize("schedule", [partial(Alright, lam=0.5, seed=5), partial(MaxRight, lam=0.5, refresh_every=3)])
def test_resumed_run_continues_the_same_schedule(tmp_path, schedule):
    """8 steps in one go == killed after the step-4 checkpoint and resumed: same choices, streams and weights."""
    dm = make_dm()
    full_record, full = Record(), make_module(dm.tokenizer)
    fit(full, dm, steps=8, callbacks=[InterleaveScheduler(schedule()), full_record])

    checkpoint = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_last=True)
    part_dm, head = make_dm(), Record()
    with pytest.raises(Stop):
        fit(make_module(dm.tokenizer), part_dm, 8, [InterleaveScheduler(schedule()), head, KillAt(5), checkpoint],
            tmp_path)
    resumed_dm, tail = make_dm(), Record()
    resumed = make_module(dm.tokenizer)
    fit(resumed, resumed_dm, 8, [InterleaveScheduler(schedule(seed=99) if "seed" in schedule.keywords else
                                                     schedule()), tail], tmp_path, ckpt_path=tmp_path / "last.ckpt")
    assert head.objectives()[:4] + tail.objectives() == full_record.objectives()
    assert resumed_dm.state_dict() == dm.state_dict()
    for name, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


def test_precomputed_reference_reads_the_preference_stream(dm, tmp_path):
    module = make_module(dm.tokenizer, default_objective="dpo", reference="precomputed",
                         reference_cache_dir=str(tmp_path))
    fit(module, dm, steps=2)
    assert set(module.reference.tables) == {"train", "val"}
    assert module.reference.tables["train"].shape == (len(dm.sources["dpo"].datasets["train"]), 2)


@pytest.mark.parametrize("kwargs, key", [({"default_objective": "rl"}, r"module\.default_objective='rl'"),
                                         ({"beta": 0.0}, r"module\.beta"),
                                         ({"reference": "frozen"}, r"module\.reference='frozen'")])
def test_bad_config_names_the_key(dm, kwargs, key):
    with pytest.raises(ValueError, match=key):
        make_module(dm.tokenizer, **kwargs)
