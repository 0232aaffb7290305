"""Rows from a hub id or a local json / jsonl / parquet / csv / txt file or folder, split into train / val."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset

from src.utils.checks import require

log = logging.getLogger(__name__)

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


def load_rows(path: str, split: str = "train", name: str | None = None, limit: int | None = None) -> Dataset:
    """Load ``split`` of ``path`` and keep its first ``limit`` rows.

    A local file has a single split, whatever ``split`` says (``train_val_rows`` holds rows out of it instead).
    Anything that is not an existing path is taken as a Hugging Face hub id (``load_dataset(path, name, split=split)``).
    """
    local = Path(path).expanduser()
    if local.is_file():
        rows = _load_file(local, path)
    elif local.is_dir():
        rows = load_dataset(str(local), name, split=split)
    else:
        rows = load_dataset(path, name, split=split)
    return head(rows, limit)


def train_val_rows(path: str, name: str | None, train_split: str, val_split: str | None, val_size: int, seed: int,
                   limit: int | None = None, val_limit: int | None = None) -> tuple[Dataset, Dataset]:
    """``(train rows, validation rows)`` of ``path``, with ``limit`` / ``val_limit`` applied; never overlapping.

    ``val_split`` names the validation split of a hub dataset or a directory. With ``val_split: null``, or when
    ``path`` is a local file (a single split), ``val_size`` rows are held out of ``train_split`` instead (seeded
    shuffle), and training rows identical to a held-out row are dropped. Configured splits that share rows raise.
    """
    if val_split is not None and not Path(path).expanduser().is_file():
        train, val = load_rows(path, train_split, name, limit), load_rows(path, val_split, name, val_limit)
        seen = row_hashes(train)
        overlap = sum(_row_hash(row) in seen for row in val)
        if overlap:
            raise ValueError(
                f"data.path={path}: {overlap} of the {len(val)} validation rows (split {val_split!r}) are also "
                f"training rows (split {train_split!r}); point data.val_split at a held-out split, or set "
                f"data.val_split=null to hold out data.val_size={val_size} training rows")
        return train, val
    if val_split is not None:
        log.info("data.path=%s is a single local file: holding out %d of its rows as validation (seed %d) in place "
                 "of split %r", path, val_size, seed, val_split)
    rows = load_rows(path, train_split, name)
    require(len(rows) > val_size, "data.val_size", val_size, f"fewer than the {len(rows)} rows of {path}")
    parts = rows.train_test_split(test_size=val_size, seed=seed, shuffle=True)
    train, val = head(parts["train"], limit), head(parts["test"], val_limit)
    held_out = row_hashes(val)
    keep = [i for i, row in enumerate(train) if _row_hash(row) not in held_out]
    if len(keep) < len(train):  # the file repeats these rows; a copy on each side would validate on training data
        log.warning("data.path=%s: dropped %d training rows identical to a held-out validation row", path,
                    len(train) - len(keep))
        train = train.select(keep)
    return train, val


def head(rows: Dataset, limit: int | None) -> Dataset:
    return rows.select(range(min(limit, len(rows)))) if limit else rows


def row_hashes(rows: Any) -> set[bytes]:
    return {_row_hash(row) for row in rows}


def _row_hash(row: dict[str, Any]) -> bytes:
    """Rows compare by content: the digest of their JSON (``default=str`` covers dates and other non-JSON values)."""
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).digest()


def _load_file(local: Path, path: str) -> Dataset:
    builder = LOCAL_BUILDERS.get(local.suffix)
    if builder is None:
        raise ValueError(f"data.path={path}: unsupported file type {local.suffix!r}; use {sorted(LOCAL_BUILDERS)}")
    try:
        return load_dataset(builder, data_files=str(local), split="train")
    except Exception:
        where = json_error(local) if builder == "json" else None
        if where is None:
            raise
        # The json builder's own error is a long DatasetGenerationError chain that names neither the file nor the line.
        raise ValueError(f"data.path={path}: {where}") from None


def json_error(path: Path) -> str | None:
    """Where ``path`` (one JSON array, or JSON Lines) stops being valid JSON, or None if it parses."""
    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
        return None  # one JSON document that parses: the load failed for another reason
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("["):  # meant as one JSON array: json's own position
            return f"line {error.lineno} column {error.colno} is not valid JSON ({error.msg})"
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number} is not valid JSON ({error.msg}: column {error.colno})"
        if not isinstance(row, dict):
            return f"line {number} is not a JSON object (got {type(row).__name__})"
    return None
