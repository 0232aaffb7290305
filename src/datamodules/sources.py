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
VAL_CAP = 200  # the most rows a fractional data.val_size holds out


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


def check_val_size(val_size: float) -> None:
    require(0 < val_size < 1 or (val_size >= 1 and float(val_size).is_integer()), "data.val_size", val_size,
            "a fraction of the rows in (0, 1) or a whole number of rows (at least 1)")


def held_out_count(val_size: float, rows: int) -> int:
    """Validation rows to hold out of ``rows``: ``val_size`` rows if it is a whole number, else that fraction of the
    rows, rounded, at least 1 and at most ``VAL_CAP`` (a 20-row file keeps 19 rows to train on, a hub dataset
    validates on 200 rows, not thousands)."""
    if val_size >= 1:
        return int(val_size)
    return max(1, min(VAL_CAP, round(val_size * rows)))


def train_val_rows(path: str, name: str | None, train_split: str, val_split: str | None, val_size: float, seed: int,
                   limit: int | None = None, val_limit: int | None = None) -> tuple[Dataset, Dataset]:
    """``(train rows, validation rows)`` of ``path``, with ``limit`` / ``val_limit`` applied; never overlapping.

    ``val_split`` names the validation split of a hub dataset or a directory. With ``val_split: null``, or when
    ``path`` is a local file (a single split), ``held_out_count(val_size, rows)`` rows are held out of
    ``train_split`` instead (seeded shuffle), and training rows identical to a held-out row are dropped. Configured
    splits that share rows raise.
    """
    if val_split is not None and not Path(path).expanduser().is_file():
        train, val = load_rows(path, train_split, name, limit), load_rows(path, val_split, name, val_limit)
        seen = row_hashes(train)
        overlap = sum(_row_hash(row) in seen for row in val)
        if overlap:
            raise ValueError(
                f"data.path={path}: {overlap} of the {len(val)} validation rows (split {val_split!r}) are also "
                f"training rows (split {train_split!r}); point data.val_split at a held-out split, or set "
                f"data.val_split=null to hold training rows out instead (data.val_size={val_size:g})")
        return train, val
    rows = load_rows(path, train_split, name)
    count = held_out_count(val_size, len(rows))
    if len(rows) <= count:
        raise ValueError(f"data.path={path} has {len(rows)} row(s): too few to hold out {count} for validation "
                         f"(data.val_size={val_size:g}) and train on the rest; add rows or lower data.val_size")
    where = f"data.path={path} is a single local file: " if val_split is not None else f"data.path={path}: "
    instead = f" in place of split {val_split!r}" if val_split is not None else ""
    log.info("%sholding out %d of its %d rows as validation (data.val_size=%g, seed %d)%s", where, count, len(rows),
             val_size, seed, instead)
    parts = rows.train_test_split(test_size=count, seed=seed, shuffle=True)
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
    empty = (f"data.path={path} has no rows; write at least 2 rows into it (one to validate on; JSON Lines: one "
             "JSON object per line, see the README's Data section) or point data.path at another file")
    if builder != "parquet" and not _has_text(local):
        raise ValueError(empty)  # datasets' json builder would fail with a bare StopIteration
    try:
        rows = load_dataset(builder, data_files=str(local), split="train")
    except Exception as error:
        if "corresponds to no data" in str(error):  # `[]`, or a csv with only its header
            raise ValueError(empty) from None
        where = json_error(local) if builder == "json" else None
        if where is None:
            raise
        # The json builder's own error is a long DatasetGenerationError chain that names neither the file nor the line.
        raise ValueError(f"data.path={path}: {where}") from None
    if len(rows) == 0:
        raise ValueError(empty)
    return rows


def _has_text(path: Path, probe: int = 1 << 16) -> bool:
    """Whether ``path`` holds anything but whitespace (a whitespace-only file is small: only its head is read)."""
    with path.open("rb") as file:
        start = file.read(probe)
    return bool(start.strip()) or path.stat().st_size > probe


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
