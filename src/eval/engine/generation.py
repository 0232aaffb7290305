"""Greedy or sampled completions of rendered prompts, as a list: a thin front of the evaluation engine."""

from __future__ import annotations

from typing import Any

import torch

from src.eval.engine.hf_engine import Sampling, generate_samples


def generate(
    model: torch.nn.Module, tokenizer: Any, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32,
    do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
) -> list[str]:
    """One completion per prompt (text as rendered by the DataModule: template tokens included), in prompt order.

    Prompts are encoded as training encodes them (one BOS). Greedy unless ``do_sample``.
    """
    sampling = Sampling(temperature=temperature if do_sample else 0.0, top_p=top_p, max_new_tokens=max_new_tokens,
                        seed=seed or 0, batch_size=batch_size)
    samples = generate_samples(model, tokenizer, list(enumerate(prompts)), sampling)
    return [samples[i][0].text for i in range(len(prompts))]
