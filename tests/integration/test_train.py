"""End-to-end behaviour of train.py: learning, export, bad input, non-finite losses, resume, accumulation."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch
from lightning.pytorch import Callback
from transformers import AutoModelForCausalLM, AutoTokenizer

import train
from tests.helpers import ROOT, TINY, TINY_MODEL, compose_cfg

SMALL = TINY + TINY_MODEL + ["++data.num_train=64", "++data.num_val=16", "++callbacks.task_accuracy.num_prompts=4",
                "trainer.max_steps=4", "trainer.val_check_interval=2"]


def val_ce_history(output_dir) -> list[float]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return [float(row["val/ce"]) for row in csv.DictReader(f) if row.get("val/ce")]


def test_default_run_learns(tmp_path):
    """The quickstart recipe, shortened: held-out CE falls well below its starting value."""
    cfg = compose_cfg(TINY + ["++model.hidden_size=64", "++model.num_layers=2", "++data.num_train=800",
                              "++callbacks.task_accuracy.num_prompts=8", "trainer.max_steps=120",
                              "trainer.val_check_interval=60"], tmp_path)
    train.train(cfg)
    history = val_ce_history(tmp_path)
    assert len(history) == 3  # before, step 60, step 120
    assert history[-1] < 0.5 * history[0], history


def test_export_loads_with_from_pretrained(tmp_path):
    train.train(compose_cfg(SMALL, tmp_path))
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith("<|user|>")
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_out_of_range_hyperparameter_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"data\.batch_size=0"):
        train.train(compose_cfg(SMALL + ["data.batch_size=0"], tmp_path))
    with pytest.raises(ValueError, match=r"module\.scheduler\.warmup_ratio"):
        train.train(compose_cfg(SMALL + ["module.scheduler.warmup_ratio=1.5"], tmp_path))


@pytest.mark.parametrize("override, expected", [
    ("experiment=nope", "Available options in 'experiment'"),
    ("module=nope", "Available options in 'module'"),
    ("data.nope=1", "Valid keys of 'data' (src.datamodules.toy.sft_tasks.ToyWorldSFTDataModule): num_train, num_val"),
    ("experiment=gem_toy module.betaa=0.5",
     "Valid keys of 'module' (src.modules.gem.GEMModule): optimizer, scheduler"),
    ("-m module.beta=0.1,0.2 trainer.nope=1", "Valid keys of 'trainer': default_root_dir"),
])
def test_unknown_choices_and_keys_are_listed(override, expected):
    out = subprocess.run([sys.executable, "train.py", *override.split()], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert expected in out.stderr + out.stdout


def train_with(cfg, *extra_callbacks):
    """``train.train(cfg)`` with test-only callbacks appended to the configured ones."""
    original = train.instantiate_all

    def with_extra(nodes):
        found = original(nodes)
        return found + list(extra_callbacks) if nodes is cfg.get("callbacks") else found

    train.instantiate_all = with_extra
    try:
        return train.train(cfg)
    finally:
        train.instantiate_all = original


class At(Callback):
    """Runs ``action(pl_module)`` when a training batch starts at optimizer step ``step``."""

    def __init__(self, step, action):
        self.step, self.action = step, action

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.action(pl_module)


def poison(pl_module):
    with torch.no_grad():
        pl_module.model.get_output_embeddings().weight.fill_(float("nan"))


class Killed(RuntimeError):
    pass


def kill(pl_module):
    raise Killed  # stands in for a SIGKILL: nothing runs after it, the last checkpoint is what remains


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = compose_cfg(SMALL + ["trainer.max_steps=6"], tmp_path)
    with pytest.raises(FloatingPointError, match=r"non-finite train/loss .* global step 3"):
        train_with(cfg, At(3, poison))  # step 2 was checkpointed (val every 2 steps); step 3 is poisoned
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def last_weights(output_dir) -> dict[str, torch.Tensor]:
    return torch.load(output_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
    """6 steps in one go == killed after the step-3 checkpoint, then resumed from last.ckpt (epoch = 3 steps)."""
    base = TINY + TINY_MODEL + ["++data.num_train=12", "data.batch_size=4", "++callbacks.task_accuracy.num_prompts=2",
                                "trainer.val_check_interval=3", "validate_before_fit=false", "trainer.max_steps=6"]
    train.train(compose_cfg(base, tmp_path / "full"))
    with pytest.raises(Killed):
        train_with(compose_cfg(base, tmp_path / "part"), At(4, kill))
    assert torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    train.train(compose_cfg(base + [f"ckpt_path={ckpt}"], tmp_path / "part"))
    full, resumed = last_weights(tmp_path / "full"), last_weights(tmp_path / "part")
    for name, value in full.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)


def train_module(cfg):
    """``train.train(cfg)``, returning the trained LightningModule."""
    kept = {}
    original = train.finish_run

    def keep(cfg_, trainer):
        kept["module"] = trainer.lightning_module
        return original(cfg_, trainer)

    train.finish_run = keep
    try:
        train.train(cfg)
    finally:
        train.finish_run = original
    return kept["module"]


def test_gradient_accumulation_does_not_change_the_update(tmp_path):
    """One SGD step on 8 examples == the same 8 as 2 x 4 with accumulation (global token-mean normalisation)."""
    base = TINY + TINY_MODEL + ["data.num_train=8", "data.num_val=4", "validate_before_fit=false",
                                "trainer.max_steps=1", "module/optimizer=sgd", "module.optimizer.lr=1.0",
                                "trainer.gradient_clip_val=null", "callbacks=none", "++trainer.limit_val_batches=0"]
    one = compose_cfg(base + ["data.batch_size=8"], tmp_path / "one")
    two = compose_cfg(base + ["data.batch_size=4", "trainer.accumulate_grad_batches=2"], tmp_path / "two")
    weights = []
    for cfg in (one, two):
        module = train_module(cfg)
        weights.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_debug_overfit_memorises_one_batch(tmp_path):
    """The plumbing check: 200 steps on the same batch drive its loss to ~0 (a reshuffled batch stalls near 0.3)."""
    train.train(compose_cfg(TINY + ["debug=overfit", "++callbacks.task_accuracy.num_prompts=2"], tmp_path))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert losses[0] > 3 and losses[-1] < 0.05, losses


def validation_steps(output_dir) -> list[int]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("val/ce")]


def test_a_run_always_ends_on_a_validation(tmp_path):
    """5 steps, validation every 2: Lightning alone validates after steps 2 and 4; the run also validates after 5,
    and last.ckpt holds step 5."""
    metrics = train.train(compose_cfg(SMALL + ["trainer.max_steps=5"], tmp_path))
    assert validation_steps(tmp_path) == [0, 2, 4, 5]  # before, then after optimizer steps 2, 4 and 5
    assert "val/ce" in metrics
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 5


def test_an_interval_longer_than_the_run_is_shortened(tmp_path):
    """alright_toy validates every 25 steps; a 3-step run would be refused by Lightning without the clamp."""
    overrides = TINY + ["experiment=alright_toy", "trainer.max_steps=3", "data.sft.num_train=64",
                        "data.prefs.num_train=32"]
    metrics = train.train(compose_cfg(overrides, tmp_path))
    assert "val/sft_loss" in metrics and validation_steps(tmp_path)[-1] == 3


@pytest.mark.slow
@pytest.mark.parametrize("accumulate", [1, 2])
def test_killed_mid_epoch_run_resumes_exactly(tmp_path, accumulate):
    """An epoch of 6 micro-batches; checkpoint after optimizer step 2 (mid-epoch, and mid-window when accumulating),
    killed during step 3, resumed: the same weights and the same logged losses as the uninterrupted run."""
    base = TINY + TINY_MODEL + ["data.num_train=24", "data.batch_size=4", "callbacks.task_accuracy.num_prompts=2",
                                "trainer.val_check_interval=2", "validate_before_fit=false", "trainer.max_steps=5",
                                f"trainer.accumulate_grad_batches={accumulate}", "trainer.log_every_n_steps=1"]
    if accumulate > 1:  # validation counts micro-batches: every 2 optimizer steps
        base += ["trainer.val_check_interval=4"]
    train.train(compose_cfg(base, tmp_path / "full"))
    with pytest.raises(Killed):
        train_with(compose_cfg(base, tmp_path / "part"), At(3, kill))
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 2
    train.train(compose_cfg(base + [f"ckpt_path={ckpt}"], tmp_path / "part"))
    full, resumed = last_weights(tmp_path / "full"), last_weights(tmp_path / "part")
    for name, value in full.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)
    assert train_losses(tmp_path / "part") == train_losses(tmp_path / "full")


def train_losses(output_dir) -> dict[int, float]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return {int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")}


def sigterm(pl_module):
    pl_module.trainer._signal_connector.received_sigterm = True  # what Lightning's SIGTERM handler sets


def test_sigterm_saves_the_step_it_stops_at(tmp_path):
    """Validation (and its checkpoint) every 2 steps; SIGTERM during the third step: last.ckpt holds step 3."""
    cfg = compose_cfg(SMALL + ["trainer.max_steps=8", "data.num_train=128"], tmp_path)
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException, raised at the end of that batch
        train_with(cfg, At(2, sigterm))
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
