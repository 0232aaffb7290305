"""Evaluation rows with ids, and saved generations matched to them by id (never by position).

A row's id is its own ``id`` field when the file has one, else its index in the file; ids are compared as strings,
so a predictions file may write ``"id": 3`` or ``"id": "3"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.datamodules.sources import load_rows


def load_task_rows(path: str, split: str = "test", name: str | None = None, limit: int | None = None,
                   key: str = "eval.path") -> list[dict[str, Any]]:
    """Rows of a local file (json, jsonl, parquet, csv) or a hub dataset split, each with a string ``id``."""
    rows = [dict(row) for row in load_rows(path, split, name, limit)]
    for index, row in enumerate(rows):
        row["id"] = str(row["id"]) if row.get("id") is not None else str(index)
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise ValueError(f"{key}={path}: id {row['id']!r} appears more than once; ids must be unique")
        seen.add(row["id"])
    if not rows:
        raise ValueError(f"{key}={path}: no rows")
    return rows


def field(row: dict[str, Any], names: Sequence[str], path: str, what: str) -> str:
    """The first of ``names`` that ``row`` has, non-empty; else an error naming the row and the fields tried."""
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value)
    raise ValueError(f"eval.path={path}: row id {row['id']!r} has no {what} (looked for fields {list(names)})")


def load_predictions(path: str, ids: Sequence[str], file_ids: set[str] | None = None) -> dict[str, list[str]]:
    """``{id: [responses]}`` for the evaluated ``ids``, from JSON lines ``{"id", "response"}`` or
    ``{"id", "responses": [...]}``.

    Every evaluated id must have a line, and no line may name an id outside the data file (``file_ids``, by default
    the evaluated ids): either is an error naming it. Lines for rows past a prompt budget are ignored.
    """
    found: dict[str, list[str]] = {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"predictions={path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise ValueError(f'{where}: expected an object with "id" and "response" or "responses"')
        rid = str(record["id"])
        if rid in found:
            raise ValueError(f"{where}: id {rid!r} appears twice")
        found[rid] = _responses(record, where)
    known = file_ids if file_ids is not None else set(ids)
    extra = [rid for rid in found if rid not in known]
    missing = [rid for rid in ids if rid not in found]
    if extra:
        raise ValueError(f"predictions={path}: {len(extra)} ids are not rows of the evaluated data, e.g. {extra[:5]}")
    if missing:
        raise ValueError(f"predictions={path}: no prediction for {len(missing)} rows, e.g. ids {missing[:5]}")
    counts = {len(found[rid]) for rid in ids}
    if len(counts) > 1:
        raise ValueError(f"predictions={path}: rows have different numbers of responses {sorted(counts)}; "
                         "metrics over n samples need the same n for every row")
    return {rid: found[rid] for rid in ids}


def _responses(record: dict[str, Any], where: str) -> list[str]:
    if "responses" in record:
        responses = record["responses"]
        if not isinstance(responses, list) or not responses:
            raise ValueError(f'{where}: "responses" must be a non-empty list of strings')
    elif "response" in record:
        responses = [record["response"]]
    else:
        raise ValueError(f'{where}: no "response" or "responses"')
    if not all(isinstance(r, str) for r in responses):
        raise ValueError(f"{where}: responses must be strings")
    return responses
