"""Batched generation with left padding, shared by evaluation callbacks and scripts."""

from __future__ import annotations

from typing import Any

import torch

from src.datamodules.encode import special_prefix, with_prefix


@torch.no_grad()
def generate(
    model: torch.nn.Module, tokenizer: Any, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32,
    do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
) -> list[str]:
    """Decode a completion for each prompt (text as rendered by the DataModule: template tokens included).

    Prompts are encoded as training encodes them: the text without special tokens, after the tokenizer's own prefix
    (a Llama BOS) unless the rendered text already starts with it. Greedy unless ``do_sample``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    prefix = special_prefix(tokenizer)
    texts = []
    generator_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        for start in range(0, len(prompts), batch_size):
            encoded = [with_prefix(tokenizer(p, add_special_tokens=False)["input_ids"], prefix)
                       for p in prompts[start:start + batch_size]]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=device)
            attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
            sampling = {"do_sample": False}
            if do_sample:
                sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
            out = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id, **sampling,
            )
            texts += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    finally:
        if seed is not None:
            torch.random.set_rng_state(generator_state)
        model.train(was_training)
    return texts
