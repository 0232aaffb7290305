"""Packing: several encoded examples per row, each keeping its own positions, so no compute goes to padding.

A packed row concatenates documents; ``position_ids`` restart at 0 at every document. Given ``position_ids`` and no
attention mask, Hugging Face models (transformers >= 4.56, ``masking_utils.find_packed_sequence_indices``) read a
new document wherever the positions do not step by +1 and attend only within it: a block-diagonal causal mask for
sdpa/eager, variable-length kernels for flash-attention. Each document's first label is set to -100, the position
the unpacked (shifted) loss never predicts either, so no document is predicted from the previous one. Token losses
and the label-token count are then exactly those of the unpacked examples; a loss that sums per *row* (convex's
``reduction=sentence``, DPO's sequence log-probs) would mix documents and refuses packed batches.
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from src.datamodules.collate import SFTCollator
from src.losses.logprobs import IGNORE_INDEX


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices, each summing to at most ``capacity``: longest first, each into the fullest bin it fits.

    Best-fit decreasing (as TRL's ``bfd`` packing) leaves far less padding than filling rows in data order. Ties go to
    the earliest bin, so the result is a pure function of ``lengths``. ``O(n log n)``: bins are kept sorted by space
    left (``bisect``).
    """
    if any(n > capacity for n in lengths):
        raise ValueError(f"an example of {max(lengths)} tokens does not fit a packed row of {capacity}")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        at = bisect.bisect_left(free, (lengths[i], -1))  # the tightest bin with enough space
        if at == len(free):
            bins.append([i])
            bisect.insort(free, (capacity - lengths[i], len(bins) - 1))
        else:
            space, b = free.pop(at)
            bins[b].append(i)
            bisect.insort(free, (space - lengths[i], b))
    return bins


def pack_examples(examples: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """Encoded examples (``input_ids``, ``labels``) -> packed rows of at most ``length`` tokens with ``position_ids``.

    Documents keep their order inside a row (the order they were given in); rows come in bin order.
    """
    rows = []
    for bin_ in best_fit_decreasing([len(ex["input_ids"]) for ex in examples], length):
        ids, labels, positions = [], [], []
        for i in sorted(bin_):
            doc = examples[i]
            ids += doc["input_ids"]
            labels += [IGNORE_INDEX] + doc["labels"][1:]  # never predicted from the previous document
            positions += list(range(len(doc["input_ids"])))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": positions, "num_documents": len(bin_)})
    return rows


class PackedCollator(SFTCollator):
    """Right-pads packed rows as :class:`SFTCollator` does, plus ``position_ids``: the padding is one more "document"
    (positions from 0, labels -100), so it attends only to itself. ``attention_mask`` marks the real tokens (token
    counts use it); the module calls the model without it, so the positions define the attention."""

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().__call__(examples)
        length = batch["input_ids"].shape[1]
        positions = [ex["position_ids"] + list(range(length - len(ex["position_ids"]))) for ex in examples]
        batch["position_ids"] = torch.tensor(positions, dtype=torch.long)  # (B, T)
        batch["num_documents"] = torch.tensor([ex["num_documents"] for ex in examples])  # (B,): samples, for rates
        return batch
