"""SFT/DPO trade-off of interleaving runs: trajectories in the (SFT loss, DPO loss) plane and their cost.

    python -m src.eval.tradeoff RUN_DIR [RUN_DIR ...] --optima optima.json --out-dir results/

Each RUN_DIR is a ``train.py`` output directory (``.hydra/config.yaml`` names the schedule and its ``lam``;
``csv/metrics.csv`` holds ``val/sft_loss`` and ``val/dpo_loss`` on the validation grid and the scheduler's
``cost/*``). Writes ``tradeoff.png`` (XRIGHT's loss-space figure: trajectories and the ideal point
``(L_sft*, L_dpo*)``, the final optimality gaps and distance to the ideal point, the training time relative to the
sequential run with the same ``lam``) and ``tradeoff.md`` (the same numbers as a table).
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from src.interleave.optima import load_optima


@dataclass
class Run:
    method: str  # alright | alright-bresenham | maxright | mix | sequential (or the directory name)
    lam: float
    steps: list[int]
    sft: list[float]  # val/sft_loss on the validation grid
    dpo: list[float]  # val/dpo_loss on the same grid
    seconds: float  # training time of the optimizer steps (cost/train_seconds)
    peak_mb: float  # the largest per-step peak memory logged

    @property
    def label(self) -> str:
        return f"{self.method} lam={self.lam:g}"


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    method, lam = run_dir.name, math.nan
    config = run_dir / ".hydra" / "config.yaml"
    if config.exists():
        schedule = OmegaConf.load(config).get("interleave") or {}
        method = str(schedule.get("_target_", method)).rsplit(".", 1)[-1].lower()
        method += "-bresenham" if schedule.get("mode") == "bresenham" else ""
        lam = float(schedule.get("lam") if schedule.get("lam") is not None else math.nan)
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    grid: dict[int, dict[str, float]] = {}
    for row in rows:  # Lightning may write the two validation metrics of one step on separate rows
        for key in ("val/sft_loss", "val/dpo_loss"):
            if row.get(key):
                grid.setdefault(int(row["step"]), {})[key] = float(row[key])
    points = sorted((s, v) for s, v in grid.items() if len(v) == 2)
    if not points:
        raise ValueError(f"{run_dir}: no step logs both val/sft_loss and val/dpo_loss")
    seconds = [float(r["cost/train_seconds"]) for r in rows if r.get("cost/train_seconds")]
    peaks = [float(v) for r in rows for k, v in r.items() if k.startswith("cost/") and k.endswith("_peak_mb") and v]
    return Run(method, lam, [s for s, _ in points], [v["val/sft_loss"] for _, v in points],
               [v["val/dpo_loss"] for _, v in points], seconds[-1] if seconds else math.nan,
               max(peaks, default=math.nan))


def summarize(runs: list[Run], optima: dict[str, float]) -> list[dict[str, float | str]]:
    """Final losses, optimality gaps, distance to the ideal point and time relative to sequential (same lam)."""
    sequential = {run.lam: run.seconds for run in runs if run.method == "sequential"}
    rows = []
    for run in sorted(runs, key=lambda r: (r.lam, r.method)):
        gap_sft, gap_dpo = run.sft[-1] - optima["sft"], run.dpo[-1] - optima["dpo"]
        base = sequential.get(run.lam, math.nan)
        # a metrics row's step is the number of optimizer steps done
        rows.append({"method": run.method, "lam": run.lam, "steps": run.steps[-1], "sft_loss": run.sft[-1],
                     "dpo_loss": run.dpo[-1], "sft_gap": gap_sft, "dpo_gap": gap_dpo,
                     "ideal_distance": math.hypot(gap_sft, gap_dpo), "train_s": run.seconds,
                     "time_vs_sequential_%": 100 * (run.seconds / base - 1), "peak_mb": run.peak_mb})
    return rows


def markdown(rows: list[dict[str, float | str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c, v) for c, v in row.items()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(column: str, value: float | str) -> str:
    if isinstance(value, str):
        return value
    if column == "time_vs_sequential_%":
        return f"{value:+.1f}"
    if column in ("train_s", "peak_mb"):
        return f"{value:.0f}" if column == "peak_mb" else f"{value:.1f}"
    return f"{value:g}" if column in ("lam", "steps") else f"{value:.3f}"


def plot(runs: list[Run], optima: dict[str, float], rows: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({run.method for run in runs})
    colors = {m: plt.cm.tab10(i) for i, m in enumerate(methods)}
    lams = sorted({run.lam for run in runs})
    styles = dict(zip(lams, ["-", "--", ":", "-."] * len(lams)))
    fig, (plane, gaps, cost) = plt.subplots(1, 3, figsize=(17, 5))
    for run in runs:
        plane.plot(run.sft, run.dpo, styles[run.lam], marker=".", color=colors[run.method], label=run.label)
        plane.plot(run.sft[-1], run.dpo[-1], "o", color=colors[run.method])
    plane.plot(optima["sft"], optima["dpo"], "k*", markersize=14, label="ideal point (optima)")
    plane.set(xlabel="held-out SFT loss", ylabel="held-out DPO loss", title="trajectories (o = final)")
    plane.legend(fontsize=7)
    labels = [f"{r['method']}\nlam={r['lam']:g}" for r in rows]
    for j, key in enumerate(("sft_gap", "dpo_gap", "ideal_distance")):
        gaps.bar([i + (j - 1) * 0.27 for i in range(len(rows))], [r[key] for r in rows], 0.27, label=key)
    gaps.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
    gaps.set(title="final optimality gaps")
    gaps.legend(fontsize=8)
    cost.bar(range(len(rows)), [r["time_vs_sequential_%"] for r in rows],
             color=[colors[r["method"]] for r in rows])
    cost.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
    cost.set(title="training time vs sequential (same lam), %")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="train.py output directories")
    parser.add_argument("--optima", required=True, help="JSON written by python -m src.interleave.optima")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--name", default="tradeoff", help="file stem of the plot and the table")
    args = parser.parse_args(argv)
    runs, optima = [load_run(d) for d in args.runs], load_optima(args.optima)
    rows = summarize(runs, optima)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(markdown(rows))
    plot(runs, optima, rows, out / f"{args.name}.png")
    print(markdown(rows))


if __name__ == "__main__":
    main()
