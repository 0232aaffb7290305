"""Packed DPO through the Trainer: the same updates as padded batches, ALRIGHT with both streams packed, and the CLI.

``tests/unit/test_packed_dpo.py`` checks one step's values and gradients; here a few optimizer steps through the real
loaders (the window's ``num_items_in_batch``, the precomputed table looked up by ``index``) must land on the same
weights and log the same training metrics.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback

from src.callbacks.interleave_scheduler import InterleaveScheduler
from src.datamodules.interleave_streams import InterleaveDataModule
from src.datamodules.packing import PackedPairCollator
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.interleave.schedules import Alright
from src.modules.backbones import tiny_llama
from src.modules.dpo import DPOModule
from src.modules.interleave import InterleaveModule
from tests.helpers import ROOT

SGD = partial(torch.optim.SGD, lr=1.0)  # a large plain step: any difference in the gradient shows in the weights


class TrainMetrics(Callback):
    """What each training step logged (``train/*``)."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})


def fit(module, dm, steps, callbacks=(), **kwargs) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=list(callbacks), **kwargs)
    trainer.fit(module, datamodule=dm)
    return trainer


def assert_same_weights(got: torch.nn.Module, want: torch.nn.Module) -> None:
    for name, value in want.state_dict().items():
        torch.testing.assert_close(got.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("loss_impl", ["plain", "chunked"])
def test_packed_training_takes_the_padded_steps(tmp_path, loss_impl):
    """3 SGD steps of 2 micro-batches of 4 pairs, precomputed reference, the SFT term: the same weights and logs."""
    runs = {}
    for packing in (False, True):
        data = ToyWorldPreferenceDataModule(num_train=24, num_val=4, batch_size=4, packing=packing)
        factory = partial(tiny_llama, data.tokenizer, hidden_size=32, num_layers=2, num_heads=2)
        module = DPOModule(model=factory, optimizer=SGD, loss_impl=loss_impl, reference="precomputed",
                           reference_cache_dir=str(tmp_path), sft_weight=0.5, average_logps=loss_impl == "chunked")
        metrics = TrainMetrics()
        fit(module, data, steps=3, callbacks=[metrics], accumulate_grad_batches=2, log_every_n_steps=1)
        runs[packing] = module, metrics.steps
    (padded, logs_u), (packed, logs_p) = runs[False], runs[True]
    assert_same_weights(packed.model, padded.model)
    assert len(logs_p) == len(logs_u) == 6 and {"train/loss", "train/logits/chosen"} <= set(logs_u[-1])
    for micro_batch, (got, want) in enumerate(zip(logs_p, logs_u)):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if key == "train/rewards/accuracies" and micro_batch < 2:
                continue  # before the first update every margin is 0 up to rounding, which decides "margin > 0"
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), (micro_batch, key)
    assert logs_u[-1]["train/loss"] != pytest.approx(logs_u[0]["train/loss"])  # the steps did move the policy


def make_interleave(prefs_packing: bool) -> InterleaveDataModule:
    return InterleaveDataModule(
        ToyWorldSFTDataModule(num_train=24, num_val=8, batch_size=4, seed=0, packing=True),
        ToyWorldPreferenceDataModule(num_train=16, num_val=6, batch_size=2, seed=0, packing=prefs_packing))


def test_alright_trains_the_same_with_both_streams_packed():
    """ALRIGHT over packed SFT rows and packed DPO pairs: the DPO steps equal the padded pairs' (SFT packing
    reorders its own stream, so both runs pack SFT)."""
    runs = {}
    for prefs_packing in (False, True):
        dm = make_interleave(prefs_packing)
        factory = partial(tiny_llama, dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2)
        module = InterleaveModule(model=factory, optimizer=SGD)
        metrics = TrainMetrics()
        fit(module, dm, steps=6, callbacks=[InterleaveScheduler(Alright(lam=0.5, seed=1)), metrics],
            log_every_n_steps=1)
        runs[prefs_packing] = module, dm, metrics.steps
    (padded, _, logs_u), (packed, dm, logs_p) = runs[False], runs[True]
    assert isinstance(dm.streams["dpo"].collate_fn, PackedPairCollator)
    assert "position_ids" in dm.next_batch("sft") and "packed_sequence_ids" in dm.next_batch("dpo")
    assert 0 < sum("train/dpo_loss" in step for step in logs_p) < 6  # both objectives trained
    assert_same_weights(packed.model, padded.model)
    for got, want in zip(logs_p, logs_u):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_cli_runs_packed_dpo(tmp_path):
    """``python train.py experiment=dpo_toy data.packing=true``, shortened as the README commands are."""
    argv = [sys.executable, str(ROOT / "train.py"), "experiment=dpo_toy", "data.packing=true",
            "trainer.max_steps=4", "trainer.log_every_n_steps=1", "++trainer.limit_val_batches=2",
            "++callbacks.task_accuracy.num_prompts=4", "++callbacks.progress_bar=null", "cpu_threads=1",
            "logger=csv", f"hydra.run.dir={tmp_path}", "trainer.accelerator=cpu", "trainer.devices=1"]
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PROJECT_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1",
                              "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-4000:]
    with open(next(tmp_path.rglob("metrics.csv"))) as f:
        rows = [row for row in csv.DictReader(f) if row.get("train/loss")]
    losses = [float(row["train/loss"]) for row in rows]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses), losses
    assert float(rows[-1]["train/tokens_seen"]) > 0 and float(rows[-1]["train/samples_per_sec"]) > 0  # counted
