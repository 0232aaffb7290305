"""W&B logging offline with names from the experiment; LoRA export merges into a plain HF checkpoint; the end of a
run: its outputs, before/after, the export's model card, and no export under fast_dev_run."""

from __future__ import annotations

import csv
import logging

import lightning as L
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset
from transformers import AutoModelForCausalLM

import train
from src.callbacks.export import HFExport, export_hf
from src.callbacks.step_numbers import StepNumbers
from src.loggers.csv import ResumableCSVLogger
from src.modules.backbones import tiny_llama
from src.run.outputs import announce_run, command_line, finish_run
from tests.helpers import TINY, TINY_MODEL, compose_cfg


def test_wandb_logger_runs_offline_with_experiment_names(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_cfg(TINY + TINY_MODEL + ["logger=wandb", "debug=limit", "++data.num_train=16", "++data.num_val=4",
                                           "++callbacks.task_accuracy.num_prompts=2", "seed=7"], tmp_path)
    assert cfg.logger.wandb.group == "quickstart" and cfg.logger.wandb.name == "quickstart-seed7"
    train.train(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_lora_export_is_merged_and_loads_without_peft(tmp_path, tokenizer):
    model = tiny_llama(tokenizer, hidden_size=32, num_heads=2, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj"]})
    with torch.no_grad():  # a trained adapter: make B non-zero so the merge matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    export_hf(model, tokenizer, tmp_path / "hf")
    assert not (tmp_path / "hf" / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([[1, 5, 9, 12]])
    model.eval()
    torch.testing.assert_close(plain(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    assert any("lora_" in n for n, _ in model.named_parameters())  # the trained module kept its adapters


# --- the end of a run ------------------------------------------------------------------------------------------


class TinyLM(L.LightningModule):
    """A tiny Llama on random ids, logging ``train/loss`` and ``val/ce``: what HFExport and finish_run need."""

    def __init__(self, tokenizer):
        super().__init__()
        self.model = tiny_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2)

    def training_step(self, batch, batch_idx):
        loss = self.model(input_ids=batch[0], labels=batch[0]).loss
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/ce", self.model(input_ids=batch[0], labels=batch[0]).loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit_tiny(out, tokenizer, **trainer_kwargs) -> L.Trainer:
    """4 steps validating every 2 (and once before), with the configured checkpoint, CSV logger and export."""
    ids = torch.randint(3, len(tokenizer), (8, 12), generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(ids), batch_size=4)
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="step{step:06d}", monitor="val/ce",
                                 save_last=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=4, val_check_interval=2, check_val_every_n_epoch=None,
                        log_every_n_steps=1, logger=ResumableCSVLogger(out),
                        callbacks=[checkpoint, HFExport(str(out / "hf")), StepNumbers()], default_root_dir=out,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        **trainer_kwargs)
    module = TinyLM(tokenizer)
    if not trainer_kwargs.get("fast_dev_run"):
        trainer.validate(module, data, verbose=False)
    trainer.fit(module, data, data)
    return trainer


def run_cfg(out) -> OmegaConf:
    return OmegaConf.create({
        "paths": {"output_dir": str(out)}, "run_name": "tiny-seed0", "experiment_name": "tiny",
        "module": {"_target_": "src.modules.ce.CEModule",
                   "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5}},
        "data": {"_target_": "src.datamodules.toy.sft_tasks.ToyWorldSFTDataModule", "num_train": 8},
        "model": {"_target_": "src.modules.backbones.tiny_llama", "_partial_": True, "hidden_size": 16},
    })


def fake_hydra_overrides(monkeypatch, task, hydra=()):
    overrides = OmegaConf.create({"overrides": {"task": list(task), "hydra": ["hydra.mode=RUN", *hydra]}})
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: overrides))


def test_command_line_is_the_overrides_as_typed(monkeypatch):
    fake_hydra_overrides(monkeypatch, ["experiment=dpo_toy", "logger.csv.ckpt_path=${ckpt_path}", "tags=[a b]"],
                         ["hydra.run.dir=logs/run"])
    assert command_line() == ("python train.py experiment=dpo_toy 'logger.csv.ckpt_path=${ckpt_path}' 'tags=[a b]' "
                              "hydra.run.dir=logs/run")


def test_finish_run_writes_the_model_card_and_says_where_everything_is(tmp_path, tokenizer, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    cfg = run_cfg(tmp_path)
    announce_run(cfg)
    trainer = fit_tiny(tmp_path, tokenizer)
    fake_hydra_overrides(monkeypatch, ["experiment=tiny", "trainer.max_steps=4"])
    metrics = finish_run(cfg, trainer)

    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        val_ce = {int(r["step"]): float(r["val/ce"]) for r in csv.DictReader(f) if r["val/ce"]}
    assert sorted(val_ce) == [0, 2, 4] and metrics["val/ce"] == val_ce[4]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert yaml.safe_load(card.split("---\n")[1])["tags"] == ["posttrain", "ce", "tiny"]
    assert "## Objective: `CEModule`" in card and "type: SGD" in card and "num_train: 8" in card
    assert "for 4 optimizer steps" in card and f"| `val/ce` | {val_ce[4]:.4f} |" in card
    assert "```bash\npython train.py experiment=tiny trainer.max_steps=4\n```" in card

    said = caplog.text
    assert f"run directory: {tmp_path}" in said
    assert f"checkpoint (last): {tmp_path / 'checkpoints' / 'last.ckpt'}" in said
    assert f"checkpoint (best): {trainer.checkpoint_callback.best_model_path} (val/ce=" in said
    assert f"metrics.csv:       {tmp_path / 'csv' / 'metrics.csv'}" in said
    assert f"hf export:         {tmp_path / 'hf'} (with README.md model card)" in said
    table = said.split("validation, before and after training:\n")[1].splitlines()
    assert table[0].split() == ["validation", "first", "(step", "0)", "final", "(step", "4)"]
    assert table[1].split() == ["val/ce", f"{val_ce[0]:.4f}", f"{val_ce[4]:.4f}"]


def test_before_is_the_first_row_of_a_resumed_runs_history(tmp_path, caplog):
    """A resumed process never validated at step 0 itself: its "before" comes from the kept history."""
    caplog.set_level(logging.INFO)
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("step,train/loss,val/ce,val/ppl\n0,,6.5,665.1\n0,6.4,,\n"
                                                  "10,,5.0,148.4\n20,,4.0,54.6\n")
    trainer = L.Trainer(logger=ResumableCSVLogger(tmp_path), enable_progress_bar=False)
    finish_run(run_cfg(tmp_path), trainer)
    table = caplog.text.split("validation, before and after training:\n")[1].splitlines()
    assert [line.split() for line in table[1:3]] == [["val/ce", "6.5000", "4.0000"], ["val/ppl", "665.1000", "54.6000"]]


def test_fast_dev_run_writes_no_export(tmp_path, tokenizer, caplog):
    caplog.set_level(logging.INFO)
    trainer = fit_tiny(tmp_path, tokenizer, fast_dev_run=True)
    finish_run(run_cfg(tmp_path), trainer)
    assert not (tmp_path / "hf").exists()
    assert f"fast_dev_run: skipping the Hugging Face export to {tmp_path / 'hf'}" in caplog.text
    assert "hf export:         none" in caplog.text
