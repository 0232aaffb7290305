"""Toy-world arithmetic word problems with terse gold answers, as question/answer files for the SmolLM2 studies.

SmolLM2-135M-Instruct answers these problems at length and often wrongly (the seed's greedy accuracy by SDFT's
last-number rule is in each study's results). The gold answer is the toy world's shortest phrasing, e.g.
"21 - 17 = 4. The answer is 4.": a style the model can learn but does not use. Training rows come from the toy
world's train split and evaluation rows from its held-out split, so no evaluation problem is a training problem
(``check_disjoint`` says so in the study's log).
"""

from __future__ import annotations

import json
from pathlib import Path

from src.toyworld.tasks import make_problems

KINDS = ("add", "sub", "mul")


def arithmetic_rows(per_kind: int, split: str, seed: int = 0) -> list[dict[str, str]]:
    """``per_kind`` problems of each kind from ``split``, interleaved (add, sub, mul, add, ...): id, kind, question,
    answer (the terse gold)."""
    by_kind = [make_problems(per_kind, split, seed, (kind,)) for kind in KINDS]
    rows = []
    for i in range(per_kind):
        for kind, problems in zip(KINDS, by_kind):
            p = problems[i]
            rows.append({"id": f"{split}-{kind}-{i}", "kind": kind, "question": p.prompt, "answer": p.responses[0]})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
    return path


def check_disjoint(train: Path, *held_out: Path) -> int:
    """The number of evaluation questions also in the training file: must be 0 (raises otherwise)."""
    seen = {r["question"] for r in json.loads(train.read_text())}
    for path in held_out:
        shared = [r["question"] for r in json.loads(path.read_text()) if r["question"] in seen]
        if shared:
            raise ValueError(f"{path}: {len(shared)} evaluation questions are training questions, e.g. {shared[0]!r}")
    return 0
