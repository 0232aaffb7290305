"""Rows from a hub id or a local json / jsonl / parquet / txt file (or a directory of them)."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, load_dataset

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


def load_rows(path: str, split: str = "train", name: str | None = None, limit: int | None = None) -> Dataset:
    """Load ``split`` of ``path`` and keep its first ``limit`` rows.

    A local file has a single split, whatever ``split`` says. Anything that is not an existing path is taken as a
    Hugging Face hub id (``load_dataset(path, name, split=split)``).
    """
    local = Path(path).expanduser()
    if local.is_file():
        builder = LOCAL_BUILDERS.get(local.suffix)
        if builder is None:
            raise ValueError(f"data.path {path}: unsupported file type {local.suffix!r}; use {sorted(LOCAL_BUILDERS)}")
        rows = load_dataset(builder, data_files=str(local), split="train")
    elif local.is_dir():
        rows = load_dataset(str(local), name, split=split)
    else:
        rows = load_dataset(path, name, split=split)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return rows
