"""FSDP2 (``trainer=fsdp2``) and DDP on two CPU processes (gloo) at batch b are one process at 2b, through the CLI.

Each run is a fresh ``python train.py`` with the distributed environment variables stripped (Lightning launches
rank 1 itself), as in ``test_ddp_equivalence.py``. Runs are cached per module, so every one-process baseline and the
uninterrupted FSDP2 runs are trained once and shared by the tests that compare against them. Compared: the final
weights (rtol 1e-5: the reduction order moves the last bits), every logged ``train/loss`` (the global micro-batch's,
``PostTrainModule.across_ranks``) and ``val/ce``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT

TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2", "trainer.max_steps=6",
        "trainer.val_check_interval=3", "callbacks.progress_bar=null",
        "trainer.log_every_n_steps=1", "cpu_threads=1", "callbacks.model_checkpoint.save_top_k=-1"]
TOY = ["data.num_val=16", "callbacks.task_accuracy.num_prompts=2"]
# Adam turns the last-bit gradient differences of near-zero gradients into update differences of ~1% of lr; at
# lr 2e-4 they stay under the 1e-5 tolerance, while other batches would move a weight by ~lr per step.
LR = "module.optimizer.lr=2e-4"
# scenario -> (overrides, the batch-size keys); b per rank, 2b for one process.
SCENARIOS = {
    "ce": (["experiment=quickstart", "data.num_train=96", *TOY], ["data.batch_size"]),
    # val_check_interval counts micro-batches: 6 validates (and checkpoints) at steps 3 and 6.
    "gem_acc2": (["experiment=quickstart", "module=gem", "trainer.accumulate_grad_batches=2",
                  "trainer.val_check_interval=6", "data.num_train=96", *TOY], ["data.batch_size"]),
    "dpo": (["experiment=dpo_toy", "data.num_train=48", *TOY, LR], ["data.batch_size"]),
    # LoRA (peft default targets, so peft-wrapped layers are sharded), the adapter reference, the chunked loss.
    "lora": (["experiment=dpo_toy", "data.num_train=48", *TOY, "model.lora={r: 4, alpha: 8}",
              "module.reference=adapter", "module.loss_impl=chunked", LR], ["data.batch_size"]),
    "alright": (["experiment=alright_toy", "data.sft.num_train=48", "data.sft.num_val=16", "data.prefs.num_train=48",
                 "data.prefs.num_val=16", LR],
                ["data.sft.batch_size", "data.prefs.batch_size"]),
}
PER_RANK = 2
FSDP2 = ["trainer=fsdp2", "trainer.accelerator=cpu", "trainer.devices=2"]
FULL_FORMAT = ["trainer.strategy.save_distributed_checkpoint=false"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK")


def python(tmp: Path, *argv: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, env={**env, "PROJECT_ROOT": str(tmp)},
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-5000:]


class Runs:
    """``get(name, scenario, extra, processes)``: the run directory of that configuration, trained at most once."""

    def __init__(self, tmp: Path):
        self.tmp, self.done = tmp, {}

    def get(self, name: str, scenario: str, extra: list[str] = (), processes: int = 2) -> Path:
        if name not in self.done:
            overrides, batch_keys = SCENARIOS[scenario]
            batch = [f"{key}={PER_RANK * (2 // processes)}" for key in batch_keys]
            out = self.tmp / name
            python(self.tmp, str(ROOT / "train.py"), *TINY, *overrides, *batch, *extra, f"hydra.run.dir={out}")
            self.done[name] = out
        return self.done[name]

    def baseline(self, scenario: str) -> Path:
        return self.get(f"one_{scenario}", scenario, processes=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("fsdp2"))


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The LightningModule state dict of a ``.ckpt`` file or of a directory of shards (read in this one process)."""
    if ckpt.is_dir():
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        dcp_to_torch_save(ckpt, ckpt.parent / f"{ckpt.name}.pt")
        ckpt = ckpt.parent / f"{ckpt.name}.pt"
    return torch.load(ckpt, weights_only=False)["state_dict"]


def train_losses(run: Path) -> dict[int, float]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return {int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")}


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def assert_same_run(run: Path, one: Path, ckpt: str = "last.ckpt") -> None:
    assert_same_weights(weights(run / "checkpoints" / ckpt), weights(one / "checkpoints" / "last.ckpt"))
    ours, theirs = train_losses(run), train_losses(one)
    assert sorted(ours) == sorted(theirs) == list(range(1, 7)), "one train/loss per step (rows: steps done)"
    assert ours == pytest.approx(theirs, rel=1e-5)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in (run, one)]
    assert metrics[0]["val/ce"] == pytest.approx(metrics[1]["val/ce"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["dpo", "alright"])
def test_fsdp2_equals_one_process(runs, scenario):
    """DPO (its copy reference sharded too) and ALRIGHT (both streams, the broadcast choice) under FSDP2."""
    assert_same_run(runs.get(f"fsdp2_{scenario}", scenario, FSDP2 + FULL_FORMAT), runs.baseline(scenario))


@pytest.mark.slow
def test_fsdp2_lora_chunked_activation_checkpointing(runs):
    """LoRA DPO with the adapter reference and the chunked loss, each decoder layer recomputed in backward."""
    extra = FSDP2 + FULL_FORMAT + ["trainer.strategy.activation_checkpointing=true"]
    run, one = runs.get("fsdp2_lora", "lora", extra), runs.baseline("lora")
    assert_same_run(run, one)
    trained = weights(run / "checkpoints" / "last.ckpt")
    assert any(v.abs().sum() > 0 for k, v in trained.items() if "lora_B" in k), "the adapters moved from zero"


@pytest.mark.slow
def test_fsdp2_export_loads_and_equals_one_process(runs):
    """CE: the run, and its hf/ export (every rank gathers, rank 0 saves) loaded with from_pretrained."""
    run, one = runs.get("fsdp2_ce", "ce", FSDP2 + FULL_FORMAT), runs.baseline("ce")
    assert_same_run(run, one)
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(run / "hf").state_dict()
    expected = {k.removeprefix("model."): v for k, v in weights(one / "checkpoints" / "last.ckpt").items()}
    assert_same_weights(exported, expected)


@pytest.mark.slow
def test_fsdp2_resume_from_a_full_checkpoint(runs):
    """DPO's full-format run resumed from its step-3 file (the frozen copy, never saved, is rebuilt) continues like the
    uninterrupted run."""
    run = runs.get("fsdp2_dpo", "dpo", FSDP2 + FULL_FORMAT)
    step3 = run / "checkpoints" / "step000003.ckpt"
    assert step3.is_file()
    resumed = runs.get("fsdp2_dpo_resumed", "dpo", FSDP2 + FULL_FORMAT + [f"ckpt_path={step3}"])
    assert_same_weights(weights(resumed / "checkpoints" / "last.ckpt"), weights(run / "checkpoints" / "last.ckpt"))
    assert train_losses(resumed) == pytest.approx({s: v for s, v in train_losses(run).items() if s > 3}, rel=1e-5)


@pytest.mark.slow
def test_fsdp2_sharded_checkpoint_accumulation_conversion_and_resume(runs):
    """GEM with accumulation 2 and sharded checkpoints (the default): equal to one process, the shards convert to a
    Hugging Face directory in one command, and a resume from the step-3 shards continues like the uninterrupted run."""
    run, one = runs.get("fsdp2_gem_acc2", "gem_acc2", FSDP2), runs.baseline("gem_acc2")
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / "meta.pt").is_file()  # one shard file per rank plus Lightning's metadata
    assert_same_run(run, one)

    python(runs.tmp, "-m", "src.run.convert_checkpoint", str(run), str(runs.tmp / "converted"))
    from transformers import AutoModelForCausalLM

    converted = AutoModelForCausalLM.from_pretrained(runs.tmp / "converted").state_dict()
    expected = {k.removeprefix("model."): v for k, v in weights(one / "checkpoints" / "last.ckpt").items()}
    assert_same_weights(converted, expected)

    step3 = run / "checkpoints" / "step000003.ckpt"
    resumed = runs.get("fsdp2_gem_acc2_resumed", "gem_acc2", FSDP2 + [f"ckpt_path={step3}"])
    assert_same_weights(weights(resumed / "checkpoints" / "last.ckpt"), weights(last))
    assert train_losses(resumed) == pytest.approx({s: v for s, v in train_losses(run).items() if s > 3}, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["gem_acc2", "dpo", "alright"])
def test_ddp_equals_one_process(runs, scenario):
    """The CE case is ``test_ddp_equivalence.py``; these share this module's one-process baselines."""
    assert_same_run(runs.get(f"ddp_{scenario}", scenario, DDP), runs.baseline(scenario))
