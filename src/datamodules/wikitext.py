"""Language-model corpora cut into fixed-length blocks: WikiText (hub or a local text file), and the base of the
toy-world corpus (``src.datamodules.toy.corpus``).

Grouping follows Hugging Face's ``run_clm.py`` ``group_texts``: tokenize every row, concatenate, cut into
``block_size`` blocks, drop the remainder, ``labels = input_ids``. It works across rows, so these DataModules keep the
base's per-row ``encode`` (with its drop accounting) and group the encoded rows in ``encode_rows``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.datamodules.collate import SFTCollator
from src.datamodules.datamodule import PostTrainDataModule
from src.datamodules.sources import load_rows
from src.utils.checks import require

log = logging.getLogger(__name__)


class WikiTextDataModule(PostTrainDataModule):
    """``Salesforce/wikitext`` (``name``: ``wikitext-103-raw-v1`` or ``wikitext-2-raw-v1``) or a local text file.

    A local file (``path`` is an existing file; any suffix, e.g. ``wiki.train.raw``) gives one row per line with
    its newline kept, as the hub rows have. It has no validation split: ``val_path`` names one, otherwise its last
    ``val_size`` lines are held out (a contiguous tail, so no paragraph sits on both sides). ``limit`` /
    ``val_limit`` count rows (lines) before tokenization.

    Special tokens (run_clm leaves them to the tokenizer): rows are tokenized *without* them. run_clm with a Llama
    tokenizer (and so the EMO repo) puts a BOS before every line, which turns WikiText's empty lines into lone
    ``<s>`` tokens mid-stream. Here every *block* starts with the tokenizer's own prefix instead (BOS for Llama,
    nothing for GPT-2 and the toy tokenizer), then ``block_size - len(prefix)`` stream tokens. ``append_eos`` puts an
    EOS after every row, for corpora whose rows are whole documents; WikiText rows are paragraphs of running articles
    whose text already ends in a newline. Empty rows are dropped and counted (reason ``empty_line``); the remainder
    is dropped once per split (run_clm drops one per 1000-row ``map`` batch).
    """

    def __init__(
        self,
        path: str = "Salesforce/wikitext",
        name: str | None = "wikitext-103-raw-v1",
        block_size: int = 256,
        train_split: str = "train",
        val_split: str = "validation",
        val_path: str | None = None,
        val_size: int = 200,
        text_field: str = "text",
        append_eos: bool = False,
        **kwargs: Any,
    ):
        super().__init__(max_length=block_size, **kwargs)
        require(val_size >= 1, "data.val_size", val_size, "at least 1")
        require(val_path is None or Path(val_path).expanduser().resolve() != Path(path).expanduser().resolve(),
                "data.val_path", val_path, "a file other than data.path (validating on the training text)")
        self.path, self.name, self.val_path, self.val_size = path, name, val_path, val_size
        self.train_split, self.val_split, self.text_field = train_split, val_split, text_field
        self.append_eos = append_eos
        self.block_stats: dict[str, dict[str, int]] = {}

    @property
    def block_size(self) -> int:
        return self.max_length

    def load_split(self, split: str) -> Any:
        limit = self.limit if split == "train" else self.val_limit
        if not Path(self.path).expanduser().is_file():
            require(self.val_split != self.train_split, "data.val_split", self.val_split,
                    f"a split other than data.train_split (validating on the training text of {self.path})")
            return load_rows(self.path, self.train_split if split == "train" else self.val_split, self.name, limit)
        if self.val_path is not None:
            rows = read_lines(self.path if split == "train" else self.val_path)
        else:
            rows = read_lines(self.path)
            require(len(rows) > self.val_size, "data.val_size", self.val_size,
                    f"fewer than the {len(rows)} lines of {self.path} (or set data.val_path)")
            rows = rows[: -self.val_size] if split == "train" else rows[-self.val_size:]
        return rows[:limit] if limit else rows

    def encode(self, row: dict[str, Any]) -> dict[str, Any] | str:
        text = row.get(self.text_field)
        if not isinstance(text, str):
            return "missing_field"
        if not text.strip():
            return "empty_line"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return {"input_ids": ids + [self.tokenizer.eos_token_id] if self.append_eos else ids}

    def encode_rows(self, rows: Any, split: str) -> list[dict[str, Any]]:
        """Per-row ids (empty rows dropped and counted by the base), then one stream cut into blocks."""
        stream = [token for row in super().encode_rows(rows, split) for token in row["input_ids"]]
        body = self.block_size - len(self.prefix_ids)  # stream tokens per block
        n_blocks = len(stream) // body
        if n_blocks == 0:
            raise ValueError(f"{type(self).__name__}: the {split} text has {len(stream)} tokens, fewer than one "
                             f"block of data.block_size={self.block_size}; add text, raise data.limit or lower the "
                             "block size")
        blocks = [self.prefix_ids + stream[i * body:(i + 1) * body] for i in range(n_blocks)]  # each (block_size,)
        dropped = len(stream) - n_blocks * body
        self.block_stats[split] = {"tokens": len(stream), "blocks": n_blocks, "dropped_tokens": dropped}
        log.info("%s %s: %s", type(self).__name__, split, self.block_stats[split])
        return [{"input_ids": ids, "labels": list(ids)} for ids in blocks]

    def collate_fn(self) -> Callable:
        return SFTCollator(self.tokenizer.pad_token_id)  # blocks are full: no padding, attention mask all ones


def read_lines(path: str) -> list[dict[str, str]]:
    """``{"text": line}`` per line, newline kept (the hub's ``text`` builder strips it, which would glue paragraphs)."""
    return [{"text": line} for line in Path(path).expanduser().read_text(encoding="utf-8").splitlines(keepends=True)]
