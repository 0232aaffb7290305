"""The ideal point ``(L_sft*, L_dpo*)`` as a JSON artefact, estimated from finished single-objective runs.

XRIGHT hard-codes its optima in its scripts (Pythia-1b: ``--sft_opt 1.4980 --dpo_opt 0.0522``); here they
are measured, written once, and read by MAXRIGHT (``interleave.optima_path``) and the trade-off plot::

    python -m src.interleave.optima --sft-run <SFT-only run dir> --dpo-run <DPO-only run dir> --out optima.json

A run dir is a ``train.py`` output directory with ``csv/metrics.csv``. The SFT optimum is the best (``--take min``)
or final (``--take last``, XRIGHT's choice) ``val/sft_loss`` of the SFT-only run, likewise ``val/dpo_loss``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

METRICS = {"sft": "val/sft_loss", "dpo": "val/dpo_loss"}


def metric_history(run_dir: str | Path, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` for every row of ``<run_dir>/csv/metrics.csv`` that logged ``key``."""
    path = Path(run_dir) / "csv" / "metrics.csv"
    with open(path) as f:
        rows = [(int(row["step"]), float(row[key])) for row in csv.DictReader(f) if row.get(key)]
    if not rows:
        raise ValueError(f"{path} has no {key!r} values: was it an interleave run with validation?")
    return rows


def estimate(run_dir: str | Path, objective: str, take: str = "min") -> float:
    values = [v for _, v in metric_history(run_dir, METRICS[objective])]
    return min(values) if take == "min" else values[-1]


def load_optima(path: str | Path) -> dict[str, float]:
    data = json.loads(Path(path).read_text())
    missing = set(METRICS) - set(data)
    if missing:
        raise ValueError(f"optima file {path} lacks {sorted(missing)}: expected {{'sft': ..., 'dpo': ...}}")
    return {obj: float(data[obj]) for obj in METRICS}


def write_optima(sft_run: str | Path, dpo_run: str | Path, out: str | Path, take: str = "min") -> dict[str, float]:
    optima = {"sft": estimate(sft_run, "sft", take), "dpo": estimate(dpo_run, "dpo", take)}
    record = {**optima, "sources": {"sft": str(sft_run), "dpo": str(dpo_run)}, "take": take}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    return optima


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft-run", required=True, help="run dir of an SFT-only run (e.g. interleave.lam=0)")
    parser.add_argument("--dpo-run", required=True, help="run dir of a DPO-only run (e.g. interleave.lam=1)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--take", choices=("min", "last"), default="min")
    args = parser.parse_args(argv)
    print(json.dumps(write_optima(args.sft_run, args.dpo_run, args.out, args.take)))


if __name__ == "__main__":
    main()
