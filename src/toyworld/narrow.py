"""A narrow new task for SDFT on the toy world: the multiplication problems, answered in a style no toy-world
response uses (numbered steps). Fine-tuning a toy model on it is the setting of SDFT's forgetting claim.

    python -m src.toyworld.narrow examples/toy_narrow.json 400   # writes {"instruction", "output"} rows
"""

from __future__ import annotations

import json
import sys

from src.toyworld.tasks import make_problems


def narrow_rows(n: int, split: str = "train", seed: int = 0) -> list[dict[str, str]]:
    """``n`` multiplication problems with gold responses in the step style (same final-answer convention)."""
    rows = []
    for p in make_problems(n, split, seed, kinds=("mul",)):
        a, b = (int(w) for w in p.prompt.split() if w.isdigit())
        steps = f"Step 1: there are {a} boxes. Step 2: each box holds {b}. Step 3: {a} times {b} is {p.answer}."
        rows.append({"instruction": p.prompt, "output": f"{steps} The answer is {p.answer}."})
    return rows


if __name__ == "__main__":
    path, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
    with open(path, "w", encoding="utf-8") as f:
        json.dump(narrow_rows(count), f, indent=1)
