"""Settings that fail in preflight, before any data or model: each error names its key and the valid range."""

from __future__ import annotations

import logging

import pytest
import torch

from src.callbacks.precision_guard import HalfPrecisionGuard
from src.run.preflight import preflight
from tests.helpers import compose_cfg


@pytest.mark.parametrize("override, message", [
    ("module.optimizer.lr=nan", r"module\.optimizer\.lr=nan is out of range: expected a finite learning rate > 0"),
    ("module.optimizer.lr=-1", r"module\.optimizer\.lr=-1 is out of range"),
    ("module.scheduler.warmup_ratio=1.5", r"module\.scheduler\.warmup_ratio=1\.5 is out of range: expected 0 <= "),
    ("module.optimizer.betas=[1.5,0.9]", r"module\.optimizer \(torch\.optim\.adamw\.AdamW\): Invalid beta parameter"),
])
def test_bad_optimizer_settings_fail_by_name(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        preflight(compose_cfg([override], tmp_path))


def test_pure_half_precision_full_finetune_is_refused_unless_asked(tmp_path, caplog):
    for override in ("model.dtype=bfloat16", "trainer.precision=bf16-true"):
        with pytest.raises(ValueError, match="pure_half_precision=true"):
            preflight(compose_cfg(["experiment=ce_alpaca", override], tmp_path))
    with caplog.at_level(logging.WARNING):
        preflight(compose_cfg(["experiment=ce_alpaca", "model.dtype=bfloat16", "pure_half_precision=true"], tmp_path))
    assert "running anyway" in caplog.text
    preflight(compose_cfg(["experiment=emo_wikitext"], tmp_path))  # LoRA on a bf16 base: the base is frozen
    preflight(compose_cfg(["experiment=ce_alpaca"], tmp_path))  # fp32 weights under bf16-mixed


class Holder(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, dtype=dtype))


def test_guard_catches_weights_that_load_in_bf16():
    """model.dtype=auto can load a bf16 checkpoint: only the built model shows it."""
    with pytest.raises(ValueError, match=r"\['torch.bfloat16'\]"):
        HalfPrecisionGuard().on_fit_start(None, Holder(torch.bfloat16))
    HalfPrecisionGuard().on_fit_start(None, Holder(torch.float32))
    HalfPrecisionGuard(allow=True).on_fit_start(None, Holder(torch.bfloat16))


def test_train_checks_before_building_data(tmp_path):
    import train

    cfg = compose_cfg(["data=alpaca", "data.tokenizer=/no/such/tokenizer", "module.optimizer.lr=nan"], tmp_path)
    with pytest.raises(ValueError, match=r"module\.optimizer\.lr=nan"):  # not the tokenizer's OSError
        train.train(cfg)
