"""Every experiment composes, instantiates, and runs one fast_dev_run step on a tiny model and local data."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from tests.helpers import EXPERIMENTS, TINY, compose_cfg

# DataModule class -> the local asset (tests/conftest.py ``assets``) that stands in for its hub dataset.
DATA_ASSETS = {
    "AlpacaDataModule": "alpaca",
    "UltraFeedbackSFTDataModule": "ultrafeedback_sft",
    "UltraFeedbackPreferenceDataModule": "ultrafeedback_prefs",
    "HHPreferenceDataModule": "hh",
    "WikiTextDataModule": "wikitext",
}


def smoke_overrides(experiment: str, assets: dict, tmp_path) -> list[str]:
    """Tiny, local stand-ins for whatever the experiment would download or size for a GPU."""
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    overrides = [f"experiment={experiment}", *TINY, "++data.num_workers=0", "++callbacks.task_accuracy.num_prompts=4"]
    if cfg.model._target_.endswith("pretrained"):
        overrides += [f"model.name_or_path={assets['model']}", "++model.dtype=float32",
                      "++model.gradient_checkpointing=false", "++model.attn_implementation=null"]
    elif cfg.model._target_.endswith("tiny_llama"):
        overrides += ["++model.hidden_size=32", "++model.num_layers=2", "++model.num_heads=2"]
    overrides += _data_overrides(cfg.data, assets)
    return overrides


def _data_overrides(data: DictConfig, assets: dict) -> list[str]:
    name = data._target_.rsplit(".", 1)[-1]
    overrides = []
    if name in DATA_ASSETS:
        overrides += [f"++data.path={assets[DATA_ASSETS[name]]}", "++data.val_size=4"]
        if data.get("val_split") is not None:
            overrides += ["++data.val_split=train"]  # a local file has one split
    for key, value in (("num_train", 32), ("num_val", 8)):
        if key in data or name.startswith("ToyWorld"):
            overrides.append(f"++data.{key}={value}")
    if data.get("tokenizer", "toy") != "toy":
        overrides.append(f"++data.tokenizer={assets['model']}")
    for key, child in data.items():  # a multi-stream DataModule (interleave) nests one DataModule per stream
        if isinstance(child, DictConfig) and "_target_" in child:
            overrides += [o.replace("++data.", f"++data.{key}.", 1) for o in _data_overrides(child, assets)]
    return overrides


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_instantiates(experiment, assets, tmp_path):
    cfg = compose_cfg(smoke_overrides(experiment, assets, tmp_path), tmp_path)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module, model=instantiate(cfg.model, tokenizer=datamodule.tokenizer))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    module.configure_model()
    assert module.model.get_input_embeddings().weight.shape[0] >= len(datamodule.tokenizer)
    assert trainer.max_epochs is not None or trainer.max_steps > 0


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, assets, tmp_path):
    import train

    cfg = compose_cfg(smoke_overrides(experiment, assets, tmp_path) + ["debug=fdr"], tmp_path)
    metrics = train.train(cfg)
    assert metrics["train/loss"] == metrics["train/loss"]  # finite, not NaN
    assert (tmp_path / "hf" / "config.json").exists()
