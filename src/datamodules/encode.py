"""Segments -> ``input_ids`` and ``labels``, with the truncation policy in one place.

Truncation policy (documented in the README):
- the *prompt* is every token before the first trained token. A row whose prompt alone fills ``max_length`` is
  dropped (reason ``prompt_too_long``): it would train on nothing;
- otherwise the sequence is cut on the right at ``max_length``. The response (and any later turn) is shortened; the
  prompt is never cut.
"""

from __future__ import annotations

from typing import Any

from src.datamodules.templates import Segment
from src.losses.logprobs import IGNORE_INDEX


def special_prefix(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before text by default (a BOS for Llama-style tokenizers, nothing for ChatML)."""
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    return with_special[: len(with_special) - len(plain)] if with_special[-len(plain):] == plain else []


def with_prefix(ids: list[int], prefix_ids: list[int]) -> list[int]:
    """``prefix_ids + ids`` unless ``ids`` already start with them (a template that renders ``{{ bos_token }}``)."""
    return ids if ids[: len(prefix_ids)] == prefix_ids else prefix_ids + ids


def encode_segments(
    tokenizer: Any, segments: list[Segment], max_length: int, prefix_ids: list[int] | None = None
) -> dict[str, list[int]] | str:
    """Tokenize each segment on its own and concatenate; labels are ``IGNORE_INDEX`` outside trained segments.

    ``prefix_ids`` (the tokenizer's BOS, see ``special_prefix``) go first unless the text already starts with them.

    Returns the encoded example, or the name of the reason the row is dropped.
    """
    if not any(train and text.strip() for text, train in segments):
        return "empty_response"
    pieces = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
    input_ids, labels = [], []
    for ids, (_, train) in zip(pieces, segments):
        input_ids += ids
        labels += ids if train else [IGNORE_INDEX] * len(ids)
    prefix_ids = prefix_ids or []
    if input_ids[: len(prefix_ids)] != prefix_ids:  # a chat template that renders {{ bos_token }} has its BOS already
        input_ids, labels = prefix_ids + input_ids, [IGNORE_INDEX] * len(prefix_ids) + labels
    first_trained = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), None)
    if first_trained is None:
        return "empty_response"
    if first_trained >= max_length:
        return "prompt_too_long"
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}
