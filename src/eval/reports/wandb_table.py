"""The samples of an evaluation as a ``wandb.Table`` (one row per generated sample), for the W&B dashboard.

``eval=ppl``'s per-sequence records (``nll``, ``tokens``, no ``response``) are not samples and stay out: a column
must hold one type, and their ids are sequence positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("task", "id", "sample", "prompt", "response", "num_tokens", "truncated", "answer", "correct")


def samples_table(path: Path, max_rows: int = 10_000) -> Any:
    import wandb

    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "response" in record:
                rows.append([record.get(column) for column in COLUMNS])
            if len(rows) == max_rows:
                break
    return wandb.Table(columns=list(COLUMNS), data=rows)
