"""Evaluation rows with ids, and saved generations matched to them by id (never by position).

A row's id is its own ``id`` field when the file has one, else its index in the file; ids are compared as strings,
so a predictions file may write ``"id": 3`` or ``"id": "3"``. ``limit=N`` evaluates a seeded random subset of the rows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from src.datamodules.sources import load_rows
from src.utils.jsonl import id_records

log = logging.getLogger(__name__)
_announced: set[tuple] = set()  # the validation callback subsets at every validation: say it once


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


def random_subset(rows: Any, limit: int | None, seed: int, name: str) -> Any:
    """``limit`` of ``rows`` (a list or a ``datasets.Dataset``) drawn at random, kept in their order; all of them when
    ``limit`` is None or not below their number.

    The first ``limit`` of a seeded shuffle, so the same seed gives the same rows and a larger limit adds rows to a
    smaller one's. A file's head is no sample of it: files are often sorted, and the toy world's held-out problems
    exhaust their small kinds first (11 of the first 32 of 200 are ``length`` / ``reverse``, 12 of all 200).
    """
    if limit is None:
        return rows
    if limit >= len(rows):
        _say(name, f"limit={limit}: all {len(rows)} rows")
        return rows
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    keep = sorted(order[:limit])
    _say(name, f"limit={limit}: a random subset of {limit} of {len(rows)} rows (limit_seed={seed})")
    return rows.select(keep) if hasattr(rows, "select") else [rows[i] for i in keep]


def _say(name: str, text: str) -> None:
    if (name, text) not in _announced:
        _announced.add((name, text))
        log.info("%s: %s", name, text)


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
    the evaluated ids): either is an error naming it. Lines for rows outside ``limit``'s subset are ignored.
    """
    found: dict[str, list[str]] = {}
    for _, where, rid, record in id_records(path, "predictions", '"id" and "response" or "responses"'):
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
