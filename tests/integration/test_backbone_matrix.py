"""Every experiment composes with every backbone option, and a few of them build on tiny stand-ins.

An experiment sets only what every backbone takes (dtype, attention, checkpointing, LoRA); the backbone's own
settings (a hub id, the tiny model's sizes) live in its ``conf/model/`` option, so ``model=`` swaps them all.
"""

from __future__ import annotations

import inspect

import pytest
from omegaconf import OmegaConf

from src.api import build
from src.modules.backbones import pretrained, tiny_llama
from tests.helpers import EXPERIMENTS, TINY_MODEL, compose_cfg, local_stand_ins

MODELS = {  # option -> (its overrides, the factory it builds with)
    "tiny": ([], tiny_llama),
    "pretrained": (["model.name_or_path=/models/my-llama"], pretrained),
    "smollm2_135m": ([], pretrained),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_every_backbone(experiment, model, tmp_path):
    overrides, factory = MODELS[model]
    cfg = compose_cfg([f"experiment={experiment}", f"model={model}", *overrides], tmp_path)
    node = OmegaConf.to_container(cfg.model, resolve=False)
    assert node["_target_"] == f"{factory.__module__}.{factory.__name__}"
    assert set(node) - {"_target_", "_partial_"} <= set(inspect.signature(factory).parameters), node
    if model == "pretrained":  # the experiment's recipe did not put its own hub id back
        assert node["name_or_path"] == "/models/my-llama"
    if model == "smollm2_135m":
        assert node["name_or_path"] == "${smollm2_dir:${paths.cache_dir}}"


@pytest.mark.parametrize("experiment, model", [
    ("quickstart", "pretrained"),  # the default run on a saved model
    ("gem_ultrafeedback", "tiny"),  # a hub recipe (Llama-3.1-8B) on the tiny Llama, its fp32/checkpointing kept
    ("xright_pythia1b", "tiny"),  # a GPT-NeoX recipe's LoRA on a Llama: peft's default targets per architecture
    ("dpo_ultrafeedback", "tiny"),
])
def test_swapped_backbones_build(experiment, model, assets, tmp_path):
    base = [f"experiment={experiment}", f"model={model}", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    overrides = base + (TINY_MODEL if model == "tiny" else [])
    cfg = compose_cfg(overrides + local_stand_ins(compose_cfg(overrides, tmp_path), assets), tmp_path)
    parts = build(cfg)
    parts.module.configure_model()
    backbone = parts.module.model
    assert backbone.get_input_embeddings().weight.shape[0] >= len(parts.datamodule.tokenizer)
    if model == "tiny":
        assert backbone.config.hidden_size == 32 and backbone.is_gradient_checkpointing == \
            bool(cfg.model.gradient_checkpointing)
        assert bool(cfg.model.lora) == hasattr(backbone, "peft_config")
    else:
        assert backbone.config.hidden_size == 32  # the saved stand-in's size, not the quickstart's 96
