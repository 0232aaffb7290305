"""The id-keyed JSON-lines files the project reads back (saved predictions, saved generations), line by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def id_records(path: str | Path, key: str, expected: str) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
    """``(line number, where, id, record)`` for each non-blank line of ``path``, the id as a string; ``where`` is
    ``<key>=<path> line <n>`` for the caller's own messages. A line that is not JSON, or not an object with an
    ``id``, raises, naming the file and line and saying what a line should hold (``expected``)."""
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{key}={path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or record.get("id") is None:
            raise ValueError(f"{where}: expected an object with {expected}")
        yield number, where, str(record["id"]), record
