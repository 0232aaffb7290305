"""Every experiment composes, instantiates, and runs one fast_dev_run step on a tiny model and local data."""

from __future__ import annotations

import math

import pytest
from hydra.utils import instantiate

from tests.helpers import EXPERIMENTS, TINY, compose_cfg, local_stand_ins


def smoke_overrides(experiment: str, assets: dict, tmp_path) -> list[str]:
    """Tiny, local stand-ins for whatever the experiment would download or size for a GPU."""
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    overrides = [f"experiment={experiment}", *TINY, "++data.num_workers=0", "++callbacks.task_accuracy.num_prompts=4"]
    if cfg.model._target_.endswith("tiny_llama"):
        overrides += ["++model.hidden_size=32", "++model.num_layers=2", "++model.num_heads=2"]
    return overrides + local_stand_ins(cfg, assets)


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
    assert math.isfinite(metrics["train/loss"])
    assert not (tmp_path / "hf").exists()  # debug=fdr writes no export
