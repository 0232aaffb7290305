"""The samples of an evaluation as a ``wandb.Table`` (one row per sample), for the W&B dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("task", "id", "sample", "prompt", "response", "num_tokens", "truncated", "answer", "correct")


def samples_table(path: Path, max_rows: int = 10_000) -> Any:
    import wandb

    rows = []
    with open(path, encoding="utf-8") as f:
        for line, _ in zip(f, range(max_rows)):
            record = json.loads(line)
            rows.append([record.get(column) for column in COLUMNS])
    return wandb.Table(columns=list(COLUMNS), data=rows)
