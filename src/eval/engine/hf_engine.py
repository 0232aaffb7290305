"""The one generation engine: batched, left-padded, length-sorted Hugging Face ``generate`` with n samples per prompt.

Every consumer (evaluation tasks, the validation callback, SDFT's distillation stage, the toy accuracy callback)
calls ``generate_samples``. Prompts are encoded as training encodes them (the tokenizer's own prefix, a Llama BOS,
exactly once), sorted longest first so a batch holds similar lengths (less padding, and an out-of-memory shows on the
first batch), and the results come back keyed by prompt id, never by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from src.datamodules.encode import special_prefix, with_prefix
from src.utils.checks import require


@dataclass
class Sampling:
    """Decoding settings (``eval.generation.*``). ``temperature=0`` is greedy; ``top_k=0`` and ``top_p=1`` are off.

    ``batch_size`` counts sequences (prompts x ``n``) per ``generate`` call. ``stop`` strings end a sample and are
    cut from its text, as vLLM does. ``seed`` fixes sampling: the same settings and seed give the same samples.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop: list[str] | None = None
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        require(self.n >= 1, "generation.n", self.n, "at least 1")
        require(self.temperature >= 0, "generation.temperature", self.temperature, ">= 0 (0 is greedy)")
        require(0 < self.top_p <= 1, "generation.top_p", self.top_p, "in (0, 1]")
        require(self.top_k >= 0, "generation.top_k", self.top_k, ">= 0 (0 is off)")
        require(self.max_new_tokens >= 1, "generation.max_new_tokens", self.max_new_tokens, "at least 1")
        require(self.batch_size >= 1, "generation.batch_size", self.batch_size, "at least 1")
        require(self.n == 1 or self.temperature > 0, "generation.n", self.n,
                "1 under greedy decoding (temperature=0 gives n identical samples); set generation.temperature")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Sample:
    """One generated response: ``truncated`` means it hit ``max_new_tokens`` without an end-of-sequence or stop;
    ``end_token`` is the end-of-sequence id that ended it (None: a stop string, the length limit, or saved text)."""

    prompt_id: Any
    index: int
    text: str
    num_tokens: int | None
    truncated: bool | None
    end_token: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def generate_samples(
    model: torch.nn.Module, tokenizer: Any, prompts: Sequence[tuple[Any, str]], sampling: Sampling,
    progress: bool = False,
) -> dict[Any, list[Sample]]:
    """``{prompt id: [n Samples]}`` for ``prompts`` = ``[(id, rendered prompt text), ...]`` (ids unique)."""
    ids = [pid for pid, _ in prompts]
    require(len(set(ids)) == len(ids), "prompt ids", len(ids) - len(set(ids)), "0 duplicates")
    prefix = special_prefix(tokenizer)
    encoded = {pid: with_prefix(tokenizer(text, add_special_tokens=False)["input_ids"], prefix)
               for pid, text in prompts}
    order = sorted(ids, key=lambda pid: -len(encoded[pid]))
    per_batch = max(1, sampling.batch_size // sampling.n)
    was_training = model.training
    model.eval()
    results: dict[Any, list[Sample]] = {}
    try:
        with torch.random.fork_rng(devices=_devices(model)), tqdm(total=len(order), disable=not progress,
                                                                    desc="prompts") as bar:
            torch.manual_seed(sampling.seed)
            for start in range(0, len(order), per_batch):
                batch = order[start:start + per_batch]
                results.update(_generate_batch(model, tokenizer, batch, [encoded[p] for p in batch], sampling))
                bar.update(len(batch))
    finally:
        model.train(was_training)
    return {pid: results[pid] for pid in ids}


def _devices(model: torch.nn.Module) -> list[int]:
    device = next(model.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []


def _generate_batch(model: torch.nn.Module, tokenizer: Any, batch: list[Any], encoded: list[list[int]],
                    sampling: Sampling) -> dict[Any, list[Sample]]:
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=device)  # (P, W)
    attention_mask = (torch.arange(width, device=device) >= width - torch.tensor(
        [len(ids) for ids in encoded], device=device)[:, None]).long()
    eos_ids = end_of_sequence_ids(model, tokenizer)
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=sampling.max_new_tokens,
        pad_token_id=pad_id, eos_token_id=eos_ids, num_return_sequences=sampling.n, **_decoding(sampling),
        **({"stop_strings": list(sampling.stop), "tokenizer": tokenizer} if sampling.stop else {}),
    )[:, width:]  # (P * n, new tokens): the n samples of a prompt are adjacent
    samples: dict[Any, list[Sample]] = {pid: [] for pid in batch}
    for row, tokens in enumerate(out.tolist()):
        pid = batch[row // sampling.n]
        samples[pid].append(_sample(pid, row % sampling.n, tokens, eos_ids, pad_id, tokenizer, sampling))
    return samples


def _decoding(sampling: Sampling) -> dict[str, Any]:
    # Every knob is passed explicitly: a checkpoint's generation_config.json (top_k=50, T=0.6, ...) must not leak in.
    if sampling.greedy:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}


def end_of_sequence_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS plus the model's generation-config EOS ids (chat models end turns with their own)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [tokenizer.eos_token_id, *configured] if i is not None})


def _sample(pid: Any, index: int, tokens: list[int], eos_ids: list[int], pad_id: int, tokenizer: Any,
            sampling: Sampling) -> Sample:
    ended = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
    generated = tokens[:ended] if ended is not None else _strip_padding(tokens, pad_id)
    text = tokenizer.decode(generated, skip_special_tokens=True)
    stopped = False
    for stop in sampling.stop or ():
        if stop in text:
            text, stopped = text[:text.index(stop)], True
    num_tokens = len(generated) + (ended is not None)  # the EOS was generated too
    truncated = ended is None and not stopped and len(generated) >= sampling.max_new_tokens
    return Sample(pid, index, text, num_tokens, truncated, tokens[ended] if ended is not None else None)


def _strip_padding(tokens: list[int], pad_id: int) -> list[int]:
    """A sample without EOS is padded on the right when a stop string ended it before its batch finished."""
    end = len(tokens)
    while end and tokens[end - 1] == pad_id:
        end -= 1
    return tokens[:end]
