"""Padding collators: SFT batches and ``[chosen, rejected]`` preference batches."""

from __future__ import annotations

from typing import Any

import torch

from src.losses.logprobs import IGNORE_INDEX


def _pad(rows: list[list[int]], value: int, length: int) -> torch.Tensor:
    return torch.tensor([row + [value] * (length - len(row)) for row in rows], dtype=torch.long)


def pad_batch(examples: list[dict[str, Any]], pad_id: int, prefix: str = "", length: int | None = None) -> dict:
    """Right-pad ``input_ids`` (with ``pad_id``) and ``labels`` (with -100) to ``length`` or the longest row."""
    ids = [ex[f"{prefix}input_ids"] for ex in examples]
    length = length or max(len(row) for row in ids)
    return {
        f"{prefix}input_ids": _pad(ids, pad_id, length),  # (B, T)
        f"{prefix}attention_mask": _pad([[1] * len(row) for row in ids], 0, length),
        f"{prefix}labels": _pad([ex[f"{prefix}labels"] for ex in examples], IGNORE_INDEX, length),
    }


class SFTCollator:
    """Pads a list of encoded examples; carries the accumulation window's token count when the sampler sets one."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch(examples, self.pad_id)
        if "num_items_in_batch" in examples[0]:
            batch["num_items_in_batch"] = torch.tensor(examples[0]["num_items_in_batch"])
        return batch


class PreferenceCollator:
    """Pads chosen and rejected to one common length, so ``concat_pairs`` can stack them for a single forward."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(ex[f"{side}_input_ids"]) for ex in examples for side in ("chosen", "rejected"))
        batch = pad_batch(examples, self.pad_id, "chosen_", length)
        batch.update(pad_batch(examples, self.pad_id, "rejected_", length))
        if "index" in examples[0]:  # the pair's position in its split: the precomputed reference's lookup key
            batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)  # (B,)
        if "num_items_in_batch" in examples[0]:  # chosen-response tokens of the accumulation window (SFT term)
            batch["num_items_in_batch"] = torch.tensor(examples[0]["num_items_in_batch"])
        return batch
