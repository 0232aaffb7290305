"""Backbone factories: tiny from config, pretrained from a saved directory, LoRA through peft."""

import pytest
import torch

from src.modules.backbones import pretrained, tiny_llama


def test_tiny_is_deterministic_in_seed(tokenizer):
    a, b = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=1)
    torch.manual_seed(123)  # the global RNG does not matter
    c = tiny_llama(tokenizer, seed=1)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q) and torch.equal(p, r), name
    assert a.config.vocab_size == len(tokenizer)


def test_pretrained_loads_saved_dir_with_dtype(assets, tokenizer):
    model = pretrained(tokenizer, str(assets["model"]), dtype="bfloat16", attn_implementation="sdpa")
    assert model.dtype == torch.bfloat16
    reference = pretrained(tokenizer, str(assets["model"]), dtype="float32")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(model(ids).logits.float(), reference(ids).logits, atol=0.1)
    with pytest.raises(ValueError, match="model.dtype"):
        pretrained(tokenizer, str(assets["model"]), dtype="fp8")


def test_lora_trains_adapters_only(tokenizer):
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    model = tiny_llama(tokenizer, hidden_size=32, num_heads=2, lora=lora)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    with pytest.raises(ValueError, match="unknown keys"):
        tiny_llama(tokenizer, lora={"rank": 4})
