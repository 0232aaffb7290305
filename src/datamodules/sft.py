"""SFT DataModules: rows become (text, trained?) segments, then ids with prompt tokens labelled -100."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from src.datamodules.base import PostTrainDataModule
from src.datamodules.batching import EncodedDataset
from src.datamodules.collate import SFTCollator
from src.datamodules.encode import encode_segments
from src.datamodules.packing import PackedCollator, pack_examples
from src.datamodules.sources import train_val_rows
from src.datamodules.templates import Segment, alpaca_prompt, chat_segments
from src.utils.checks import require, require_choice


class SFTDataModule(PostTrainDataModule):
    """Rows from ``path`` (hub id or local file). ``val_split: null`` or a local file holds out ``val_size`` train
    rows instead (``sources.train_val_rows``). ``val_from`` takes the validation rows from another source of the same
    rows in the same order (the same seeded hold-out picks the same rows): SDFT validates on the original responses
    of the rows it distilled, so its ``val/ce`` compares with plain SFT's.

    ``packing``: the training examples are packed into rows of up to ``max_length`` tokens, each document with its
    own positions and attention (``src/datamodules/packing.py``); the same token losses with no padding to compute.
    Packed once at setup, so an epoch shuffles the packed rows. Validation stays unpacked."""

    def __init__(
        self, path: str, name: str | None = None, train_split: str = "train", val_split: str | None = None,
        val_size: int = 200, val_from: str | None = None, packing: bool = False, **kwargs: Any,
    ):
        super().__init__(**kwargs)
        require(val_size >= 1, "data.val_size", val_size, "at least 1")
        self.path, self.name, self.val_from, self.packing = path, name, val_from, packing
        self.train_split, self.val_split, self.val_size = train_split, val_split, val_size
        self.rows: tuple[Any, Any] | None = None  # (train, val), loaded together so they can be checked for overlap

    def load_split(self, split: str) -> Any:
        if self.rows is None:
            self.rows = self._rows(self.path)
            if self.val_from:  # the same held-out rows, as the other source has them
                self.rows = (self.rows[0], self._rows(self.val_from)[1])
        return self.rows[0 if split == "train" else 1]

    def _rows(self, path: str) -> tuple[Any, Any]:
        return train_val_rows(path, self.name, self.train_split, self.val_split, self.val_size, self.seed, self.limit,
                              self.val_limit)

    def segments(self, row: dict[str, Any]) -> list[Segment] | str:
        raise NotImplementedError

    def encode(self, row: dict[str, Any]) -> dict[str, Any] | str:
        segments = self.segments(row)
        if isinstance(segments, str):
            return segments
        return encode_segments(self.tokenizer, segments, self.max_length, self.prefix_ids)

    def setup(self, stage: str | None = None) -> None:
        fresh = "train" not in self.datasets
        super().setup(stage)
        if self.packing and fresh:
            self.datasets["train"] = EncodedDataset(pack_examples(self.datasets["train"].examples, self.max_length))

    def collate_fn(self) -> Callable:
        return SFTCollator(self.tokenizer.pad_token_id)

    def train_collate_fn(self) -> Callable:
        return PackedCollator(self.tokenizer.pad_token_id) if self.packing else self.collate_fn()


class AlpacaDataModule(SFTDataModule):
    """``instruction`` / ``input`` / ``output`` rows (tatsu-lab/alpaca, vicgalle/alpaca-gpt4, local files); other
    names through ``instruction_field`` / ``response_field`` (GSM8K: ``question`` / ``answer``).

    ``template="alpaca"`` uses the Stanford Alpaca prompt with ``output + eos`` as the target, as the official
    Alpaca, EMO and convex-learning code do; ``template="chat"`` renders a user/assistant turn with the tokenizer's
    chat template instead.
    """

    def __init__(self, path: str = "tatsu-lab/alpaca", template: str = "alpaca", instruction_field: str = "instruction",
                 response_field: str = "output", **kwargs: Any):
        super().__init__(path=path, **kwargs)
        require_choice("data.template", template, ("alpaca", "chat"))
        self.template, self.instruction_field, self.response_field = template, instruction_field, response_field

    def segments(self, row: dict[str, Any]) -> list[Segment] | str:
        instruction, output = row.get(self.instruction_field), row.get(self.response_field)
        if not isinstance(instruction, str) or not isinstance(output, str):
            return "missing_field"
        if not output.strip():
            return "empty_response"
        context = row.get("input") or ""
        if self.template == "chat":
            user = f"{instruction}\n\n{context}" if context.strip() else instruction
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
            return chat_segments(self.tokenizer, messages)
        return [(alpaca_prompt(instruction, context), False), (output + self.tokenizer.eos_token, True)]


class UltraFeedbackSFTDataModule(SFTDataModule):
    """HuggingFaceH4/ultrafeedback_binarized ``train_sft`` / ``test_sft``: multi-turn ``messages``, loss on assistant
    turns only, rendered with the tokenizer's chat template (the GEM recipe)."""

    def __init__(
        self, path: str = "HuggingFaceH4/ultrafeedback_binarized", train_split: str = "train_sft",
        val_split: str | None = "test_sft", **kwargs: Any,
    ):
        super().__init__(path=path, train_split=train_split, val_split=val_split, **kwargs)

    def segments(self, row: dict[str, Any]) -> list[Segment] | str:
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            return "missing_field"
        if any(not isinstance(m, dict) or "role" not in m or not isinstance(m.get("content"), str) for m in messages):
            return "malformed_message"
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            return "empty_response"
        return chat_segments(self.tokenizer, messages)
