"""DPOSettings: the one definition of the DPO keys, their defaults and their checks, for every DPO module."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from src.modules.dpo import DPOModule
from src.modules.dpo_step import DPOSettings
from src.modules.interleave import InterleaveModule


@pytest.mark.parametrize("cls", [DPOModule, InterleaveModule])
def test_module_signatures_carry_every_setting_with_its_default(cls):
    """The Hydra config is generated from the signatures: each key is a plain keyword with the settings' default."""
    params = inspect.signature(cls.__init__).parameters
    for field in dataclasses.fields(DPOSettings):
        assert params[field.name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert params[field.name].default == field.default, field.name


def test_settings_come_from_hparams_and_are_frozen():
    settings = DPOSettings.from_hparams({"default_objective": "dpo", **dataclasses.asdict(DPOSettings(beta=0.3))})
    assert settings == DPOSettings(beta=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.beta = 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"loss_type": "kto"}, r"module\.loss_type='kto' is not a valid choice"),
    ({"loss_type": "simpo"}, r"module\.reference='copy' is out of range: expected 'none' with loss_type='simpo'"),
    ({"reference": "none"}, r"module\.reference='none' is out of range: expected copy, adapter or precomputed"),
    ({"loss_type": "hinge", "label_smoothing": 0.1}, r"module\.label_smoothing=0\.1 is out of range: expected 0 with"),
    ({"label_smoothing": 0.5}, r"module\.label_smoothing=0\.5 is out of range: expected in \[0, 0\.5\)"),
    ({"beta": -1.0}, r"module\.beta=-1\.0 is out of range"),
    ({"sft_weight": -0.1}, r"module\.sft_weight=-0\.1 is out of range"),
])
def test_bad_settings_name_their_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPOSettings(**kwargs)


def test_simpo_without_a_reference_is_valid():
    assert DPOSettings(loss_type="simpo", reference="none", average_logps=True).reference == "none"
