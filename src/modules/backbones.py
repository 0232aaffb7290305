"""Backbone factories: the LightningModule receives the causal LM from here, built lazily from a config node.

Each factory takes the DataModule's ``tokenizer`` (so the vocabulary always matches) and returns a
``PreTrainedModel``; ``conf/model/*.yaml`` binds the other arguments with ``_partial_: true``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from src.utils.checks import require, require_choice

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tiny_llama(
    tokenizer: Any,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 1024,
    tie_word_embeddings: bool = False,
    seed: int = 0,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    lora: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """A randomly initialised Llama-architecture model, deterministic in ``seed`` whatever the global RNG state.

    ``dtype``, ``attn_implementation``, ``gradient_checkpointing`` and ``lora`` mean what they mean for
    :func:`pretrained`, so an experiment that sets them runs on either backbone (``model=tiny``)."""
    require(hidden_size % num_heads == 0, "model.hidden_size", hidden_size, f"a multiple of num_heads={num_heads}")
    require_choice("model.dtype", dtype, [d for d in DTYPES if d != "auto"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **({"attn_implementation": attn_implementation} if attn_implementation else {}),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(DTYPES[dtype])
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return apply_lora(model, lora)


def pretrained(
    tokenizer: Any,
    name_or_path: str,
    dtype: str = "auto",
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    lora: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` with dtype and attention options; embeddings grow to the tokenizer."""
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not a valid choice: expected one of {list(DTYPES)}")
    kwargs = {"dtype": DTYPES[dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()  # from_pretrained returns eval mode, and Lightning keeps submodule modes: dropout would stay off
    return apply_lora(model, lora)


def apply_lora(model: PreTrainedModel, lora: dict[str, Any] | None) -> PreTrainedModel:
    """Wrap with peft LoRA when ``lora`` is given (keys: r, alpha, dropout, target_modules)."""
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    unknown = set(lora) - {"r", "alpha", "dropout", "target_modules"}
    if unknown:
        raise ValueError(f"model.lora has unknown keys {sorted(unknown)}; expected r, alpha, dropout, target_modules")
    require(lora.get("r", 8) >= 1, "model.lora.r", lora.get("r"), "at least 1")
    config = LoraConfig(
        r=lora.get("r", 8),
        lora_alpha=lora.get("alpha", 16),
        lora_dropout=lora.get("dropout", 0.0),
        target_modules=list(lora["target_modules"]) if lora.get("target_modules") else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
