"""SFT DataModules: rows become (text, trained?) segments, then ids with prompt tokens labelled -100."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from src.datamodules.batching import EncodedDataset
from src.datamodules.collate import SFTCollator
from src.datamodules.datamodule import PostTrainDataModule
from src.datamodules.encode import encode_segments
from src.datamodules.formats import detect_sft_format, detection_line, first_rows, single_turn_format
from src.datamodules.packing import PackedCollator, pack_examples
from src.datamodules.rows import Messages, Turn, sft_example
from src.datamodules.sources import check_val_size, train_val_rows
from src.datamodules.templates import Segment, alpaca_prompt, chat_segments
from src.utils.checks import require_choice

log = logging.getLogger(__name__)


class SFTDataModule(PostTrainDataModule):
    """Rows from ``path`` (hub id or local file). ``val_split: null`` or a local file holds out ``val_size`` of the
    train rows instead: a whole number of rows, or a fraction, rounded, at least 1 row and at most 200
    (``sources.held_out_count``). ``val_from`` takes the validation rows from another source of the same rows in the
    same order (the same seeded hold-out picks the same rows): SDFT validates on the original responses of the rows
    it distilled, so its ``val/ce`` compares with plain SFT's.

    ``packing``: the training examples are packed into rows of up to ``max_length`` tokens, each document with its
    own positions and attention (``src/datamodules/packing.py``); the same token losses with no padding to compute.
    Packed once at setup, so an epoch shuffles the packed rows. Validation stays unpacked."""

    def __init__(
        self, path: str, name: str | None = None, train_split: str = "train", val_split: str | None = None,
        val_size: float = 0.05, val_from: str | None = None, packing: bool = False, **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_val_size(val_size)
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


class AutoSFTDataModule(SFTDataModule):
    """SFT rows in any format ``formats.py`` detects from the first rows (``data=sft_file``): Alpaca, prompt /
    completion and the other single-turn field pairs, ``messages`` or ShareGPT ``conversations``; one INFO line names
    the format and its field mapping. ``instruction_field`` / ``response_field`` name the fields instead (either one
    set: the other is Alpaca's ``instruction`` / ``output``).

    Conversations are rendered with the tokenizer's chat template, loss on every assistant turn. A single turn uses
    ``template``: ``"alpaca"``, the Stanford Alpaca prompt with ``response + eos`` as the target (the official
    Alpaca, EMO and convex-learning code), or ``"chat"``, one user/assistant turn in the chat template.
    """

    def __init__(self, path: str, template: str = "alpaca", instruction_field: str | None = None,
                 response_field: str | None = None, **kwargs: Any):
        super().__init__(path=path, **kwargs)
        require_choice("data.template", template, ("alpaca", "chat"))
        self.template = template
        named = instruction_field or response_field
        self.format = single_turn_format(instruction_field or "instruction", response_field or "output",
                                         "input") if named else None

    def load_split(self, split: str) -> Any:
        fresh = self.rows is None
        rows = super().load_split(split)
        if fresh:
            sample = first_rows(self.rows[0])
            how = "named by data.instruction_field / data.response_field" if self.format else "detected"
            self.format = self.format or detect_sft_format(sample, f"data.path={self.path}")
            log.info("data.path=%s: SFT format %s: %s", self.path, how, detection_line(self.format, sample))
        return rows

    def segments(self, row: dict[str, Any]) -> list[Segment] | str:
        example = sft_example(row, self.format or detect_sft_format([row], "row"))
        return example if isinstance(example, str) else sft_segments(self.tokenizer, example, self.template)


class AlpacaDataModule(AutoSFTDataModule):
    """``instruction`` / ``input`` / ``output`` rows (tatsu-lab/alpaca, vicgalle/alpaca-gpt4, local files), or any
    other SFT format ``AutoSFTDataModule`` detects (``instruction`` / ``response``, GSM8K's ``question`` /
    ``answer``, ...)."""

    def __init__(self, path: str = "tatsu-lab/alpaca", **kwargs: Any):
        super().__init__(path=path, **kwargs)


class UltraFeedbackSFTDataModule(AutoSFTDataModule):
    """HuggingFaceH4/ultrafeedback_binarized ``train_sft`` / ``test_sft``: multi-turn ``messages``, loss on assistant
    turns only, rendered with the tokenizer's chat template (the GEM recipe)."""

    def __init__(
        self, path: str = "HuggingFaceH4/ultrafeedback_binarized", train_split: str = "train_sft",
        val_split: str | None = "test_sft", **kwargs: Any,
    ):
        super().__init__(path=path, train_split=train_split, val_split=val_split, template="chat",
                         instruction_field=None, response_field=None, **kwargs)  # detected: messages on the hub


def sft_segments(tokenizer: Any, example: Turn | Messages, template: str) -> list[Segment]:
    """A conversation in the chat template; a single turn in ``template`` (Alpaca's prompt, or one chat turn)."""
    if not isinstance(example, Turn):
        return chat_segments(tokenizer, example)
    prompt, context, response = example
    if template == "chat":
        user = f"{prompt}\n\n{context}" if context.strip() else prompt
        return chat_segments(tokenizer, [{"role": "user", "content": user}, {"role": "assistant", "content": response}])
    return [(alpaca_prompt(prompt, context), False), (response + tokenizer.eos_token, True)]
