"""A resume into another model, objective, data or seed is refused with one line naming each differing key."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from src.callbacks.run_config import KEY
from src.run.resume_config import check_resume_config, differences, run_config
from tests.helpers import compose_cfg

SAVED = {
    "model": {"_target_": "src.modules.backbones.tiny_llama", "hidden_size": 96, "lora": None},
    "module": {"_target_": "src.modules.ce.CEModule", "loss_impl": "auto",
               "optimizer": {"lr": 0.002, "fused": True}},
    "data": {"num_train": 4000, "num_workers": 0, "seed": 42},
    "distill": None,
    "seed": 42,
}


def changed(**updates) -> dict:
    """SAVED with dotted keys set (``model__hidden_size=64``) or removed (value ``...``)."""
    new = OmegaConf.create(SAVED)
    for dotted, value in updates.items():
        key = dotted.replace("__", ".")
        if value is ...:
            parent, _, leaf = key.rpartition(".")
            del OmegaConf.select(new, parent)[leaf]
        else:
            OmegaConf.update(new, key, value, force_add=True)
    return OmegaConf.to_container(new)


def test_the_same_run_and_harmless_settings_are_no_difference():
    assert differences(SAVED, SAVED) == {}
    # head path, fused optimizer kernel, loader workers: speed, not numbers
    assert differences(SAVED, changed(module__loss_impl="chunked", module__optimizer__fused=False,
                                      data__num_workers=4)) == {}


def test_each_differing_key_with_its_old_and_new_value():
    new = changed(model__hidden_size=64, module___target_="src.modules.gem.GEMModule", module__beta=0.7,
                  module__optimizer__lr=0.001, data__num_train=...)
    assert differences(SAVED, new) == {
        "data.num_train": (4000, "(absent)"),
        "model.hidden_size": (96, 64),
        "module._target_": ("src.modules.ce.CEModule", "src.modules.gem.GEMModule"),
        "module.beta": ("(absent)", 0.7),
        "module.optimizer.lr": (0.002, 0.001),
    }
    assert differences(SAVED, changed(seed=1, data__seed=1)) == {"data.seed": (42, 1), "seed": (42, 1)}
    assert differences(SAVED, changed(model__lora={"r": 8})) == {"model.lora": (None, "(absent)"),
                                                                 "model.lora.r": ("(absent)", 8)}


def test_run_config_is_the_compared_nodes_resolved(tmp_path):
    config = run_config(compose_cfg(["experiment=gem_toy"], tmp_path))
    assert set(config) == {"model", "module", "data", "seed"}  # distill: only when the run distils
    assert config["data"]["seed"] == 42 and config["module"]["beta"] == 0.7  # ${seed} resolved
    torch.save({KEY: config}, tmp_path / "plain.ckpt")  # plain values: loads without unpickling classes
    assert torch.load(tmp_path / "plain.ckpt", weights_only=True)[KEY] == config


def cfg_for(tmp_path, ckpt, **extra):
    return OmegaConf.create({"ckpt_path": str(ckpt) if ckpt else None, "paths": {"output_dir": str(tmp_path)},
                             **extra})


def test_refused_with_one_line_and_the_run_files_put_back(tmp_path):
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("module: ce\n")
    check_resume_config(cfg_for(tmp_path, None), SAVED)  # the first job: accepted, its files kept
    torch.save({"global_step": 2, KEY: SAVED}, tmp_path / "last.ckpt")
    (hydra / "config.yaml").write_text("module: gem\n")  # what Hydra writes for the next job, before train.py
    new = changed(model__hidden_size=64, module___target_="src.modules.gem.GEMModule")
    with pytest.raises(ValueError) as refused:
        check_resume_config(cfg_for(tmp_path, tmp_path / "last.ckpt"), new)
    message = str(refused.value)
    assert "\n" not in message
    assert ("(model.hidden_size: 96 -> 64, module._target_: 'src.modules.ce.CEModule' -> 'src.modules.gem.GEMModule')"
            in message)
    assert "resume_config_check=false" in message
    assert (hydra / "config.yaml").read_text() == "module: ce\n"  # the refused job's files are gone

    (hydra / "config.yaml").write_text("module: gem\n")
    check_resume_config(cfg_for(tmp_path, tmp_path / "last.ckpt", resume_config_check=False), new)  # on purpose
    assert (hydra / "accepted" / "config.yaml").read_text() == "module: gem\n"


def test_a_checkpoint_without_a_run_config_is_resumed_with_a_warning(tmp_path, caplog):
    torch.save({"global_step": 2}, tmp_path / "old.ckpt")
    with caplog.at_level(logging.WARNING):
        check_resume_config(cfg_for(tmp_path, tmp_path / "old.ckpt"), SAVED)
    assert "holds no run config" in caplog.text
