"""W&B logging offline with names from the experiment; LoRA export merges into a plain HF checkpoint."""

from __future__ import annotations

import os

import torch
from transformers import AutoModelForCausalLM

import train
from src.callbacks.export import export_hf
from src.modules.backbones import tiny_llama
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
