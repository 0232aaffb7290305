"""Packing: several encoded examples per row, each keeping its own positions, so no compute goes to padding.

A packed row concatenates documents; ``position_ids`` restart at 0 at every document. Given ``position_ids`` and no
attention mask, Hugging Face models (transformers >= 4.56, ``masking_utils.find_packed_sequence_indices``) read a
new document wherever the positions do not step by +1 and attend only within it: a block-diagonal causal mask for
sdpa/eager, variable-length kernels for flash-attention. Each document's first label is set to -100, the position
the unpacked (shifted) loss never predicts either, so no document is predicted from the previous one. Token losses
and the label-token count are then exactly those of the unpacked examples; a loss that sums per *row* (convex's
``reduction=sentence``) would mix documents and refuses packed batches.

Preference pairs pack per batch instead (:class:`PackedPairCollator`): the batch's ``2B`` sequences fill rows of at
most ``data.max_length`` tokens with a ``sequence_ids`` map, and DPO sums its log-probs per sequence id, not per row.
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


class PackedPairCollator:
    """A preference batch of ``B`` pairs without padding between sequences (TRL's ``padding_free``): the ``2B``
    sequences, numbered chosen ``0..B-1`` then rejected (the order of ``concat_pairs``), each with positions from 0
    and its first label -100, and ``packed_sequence_ids`` naming each token's sequence in ``[0, 2B)``.

    The sequences fill rows of at most ``row_length`` tokens (``data.max_length``, so a row is never longer than a
    padded one) by best-fit decreasing; ``None`` puts all of them in one row. sdpa and eager attend over a whole row
    (masked block-diagonally), so bounded rows keep attention at most a padded batch's ``row_length^2`` per row while
    the rows hold no padding between sequences; flash-attention's variable-length kernels compute each sequence alone.
    Rows are padded to the longest row at the end: label -100, positions restarting (a document of its own), sequence
    0 (their values are 0 and never count).

    Packed per batch rather than across the dataset, so a batch still holds ``B`` whole pairs: the DPO loss stays the
    per-pair mean and ``index`` (the precomputed reference's key) and ``num_items_in_batch`` pass through unchanged.
    ``packed_sequence_lengths [2B]``: its shape gives ``2B`` without a device sync (an ``index_add_`` size). As in
    :class:`PackedCollator`, ``packed_attention_mask`` (0 at the row padding) and ``num_documents`` are for token and
    sample counts (``TokensPerSecond``); the model is called without the mask.
    """

    def __init__(self, pad_token_id: int = 0, row_length: int | None = None):
        self.pad_token_id, self.row_length = pad_token_id, row_length

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        docs = [(ex[f"{side}_input_ids"], ex[f"{side}_labels"]) for side in ("chosen", "rejected") for ex in examples]
        lengths = [len(ids) for ids, _ in docs]
        bins = best_fit_decreasing(lengths, max(self.row_length or sum(lengths), max(lengths)))
        width = max(sum(lengths[i] for i in bin_) for bin_ in bins)
        rows: dict[str, list[list[int]]] = {key: [] for key in ("ids", "labels", "positions", "sequences", "mask")}
        for bin_ in bins:
            row: dict[str, list[int]] = {key: [] for key in rows}
            for number in sorted(bin_):
                ids, labels = docs[number]
                row["ids"] += ids
                row["labels"] += [IGNORE_INDEX] + labels[1:]  # never predicted from the previous sequence
                row["positions"] += list(range(len(ids)))
                row["sequences"] += [number] * len(ids)
                row["mask"] += [1] * len(ids)
            pad = width - len(row["ids"])
            for key, value in (("ids", [self.pad_token_id] * pad), ("labels", [IGNORE_INDEX] * pad),
                               ("positions", list(range(pad))), ("sequences", [0] * pad), ("mask", [0] * pad)):
                rows[key].append(row[key] + value)
        batch = {f"packed_{name}": torch.tensor(rows[key], dtype=torch.long)  # (R, W): R rows of W tokens
                 for name, key in (("input_ids", "ids"), ("labels", "labels"), ("position_ids", "positions"),
                                   ("sequence_ids", "sequences"), ("attention_mask", "mask"))}
        batch["packed_sequence_lengths"] = torch.tensor(lengths)  # (2B,)
        batch["num_documents"] = torch.tensor([len(bin_) for bin_ in bins])  # (R,): each row's sequences
        if "index" in examples[0]:
            batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)  # (B,)
        if "num_items_in_batch" in examples[0]:
            batch["num_items_in_batch"] = torch.tensor(examples[0]["num_items_in_batch"])
        return batch
