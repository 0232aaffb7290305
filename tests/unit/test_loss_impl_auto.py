"""``module.loss_impl=auto`` (the default): chunked for large vocabularies on an eligible head, else plain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy
from transformers import LlamaConfig, LlamaForCausalLM

from src.modules.ce import CEModule
from src.modules.dpo import DPOModule
from src.modules.gem import GEMModule


def llama(vocab: int, softcap: float | None = None):
    def build():
        config = LlamaConfig(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                             num_attention_heads=1, num_key_value_heads=1)
        model = LlamaForCausalLM(config)
        if softcap:
            model.config.final_logit_softcapping = softcap
        return model
    return build


@pytest.mark.parametrize("cls", [CEModule, GEMModule, DPOModule])
@pytest.mark.parametrize("vocab, expected", [(16_000, "plain"), (31_999, "plain"), (32_000, "chunked"),
                                             (49_152, "chunked")])  # 49,152: SmolLM2's vocabulary
def test_auto_is_chunked_from_32k_on_and_plain_below(cls, vocab, expected):
    """The measured threshold (experiments/bench_losses.py --head), as literal numbers: moving the constant fails."""
    module = cls(model=llama(vocab), optimizer=torch.optim.SGD)
    assert module.loss_impl == "auto"  # the signature's default
    module.configure_model()
    assert module.loss_impl == expected, vocab


def test_auto_is_plain_for_a_soft_capped_head_or_under_fsdp1():
    module = CEModule(model=llama(32_000, softcap=30.0), optimizer=torch.optim.SGD)
    module.configure_model()
    assert module.loss_impl == "plain"
    module = CEModule(model=llama(32_000), optimizer=torch.optim.SGD)
    module._trainer = SimpleNamespace(strategy=FSDPStrategy())  # FSDP1: the head's weight is a flattened parameter
    module.model = module.model_factory()
    assert module.resolve_loss_impl() == "plain"


def test_an_explicit_setting_is_kept():
    module = CEModule(model=llama(100), optimizer=torch.optim.SGD, loss_impl="chunked")
    module.configure_model()
    assert module.loss_impl == "chunked"
