"""The training and validation curves of a run, drawn from its ``metrics.csv`` (the whole history, a resumed run's
included) into one PNG: a panel per metric family (``loss``, ``ce``, ``ppl``, ...), train and val in each."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STAGES = ("train", "val")
# The families first drawn, in this order; any other train/val family follows, up to MAX_PANELS in all.
FIRST = ("loss", "ce", "ppl", "entropy", "accuracy", "rewards/margins", "rewards/accuracies", "sft_loss", "dpo_loss")
# Throughput and memory (src/callbacks/throughput.py): how fast, not how well.
SPEED = {"tokens_per_sec", "tokens_seen", "samples_per_sec", "peak_memory_gib", "step_time_sec", "mfu"}
LOG_SCALE = {"ppl"}  # perplexity falls by orders of magnitude early on
MAX_PANELS = 9  # 3 x 3 panels of 4 x 3 inches: readable on a screen without zooming
COLUMNS = 3


def read_curves(path: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{family: {stage: [(step, value), ...]}}`` from a ``metrics.csv``: the ``step`` column as logged; a last line
    cut short by a kill (its values may end mid-number) and unreadable values left out."""
    text = path.read_text()
    text = text[: text.rfind("\n") + 1]  # complete lines only
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for row in csv.DictReader(text.splitlines()):
        step = row.get("step") or ""
        if not step.isdigit():
            continue
        for column, cell in row.items():
            stage, _, family = (column or "").partition("/")
            if stage not in STAGES or not family or family in SPEED or not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                continue
            if math.isfinite(value):
                curves.setdefault(family, {}).setdefault(stage, []).append((int(step), value))
    return curves


def families(curves: dict[str, dict]) -> list[str]:
    """The families to draw: those in ``FIRST`` (in its order), then the rest alphabetically, at most ``MAX_PANELS``."""
    ordered = [f for f in FIRST if f in curves] + sorted(f for f in curves if f not in FIRST)
    return ordered[:MAX_PANELS]


def plot_curves(metrics_csv: Path, out: Path, title: str) -> Figure | None:
    """Write ``out`` (a PNG) and return the matplotlib figure (closed); ``None`` and no file when ``metrics_csv`` has
    no train/val values."""
    import matplotlib

    matplotlib.use("Agg")  # no display: runs on clusters and in tests
    import matplotlib.pyplot as plt

    curves = read_curves(metrics_csv)
    shown = families(curves)
    if not shown:
        return None
    cols = min(COLUMNS, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows + 0.4), squeeze=False)
    for ax, family in zip(axes.flat, shown):
        for stage in (s for s in STAGES if s in curves[family]):
            steps, values = zip(*sorted(curves[family][stage]))
            # Sparse series (validation, or a short run's few training rows) get markers: a lone point has no line.
            sparse = stage == "val" or len(steps) < 20
            ax.plot(steps, values, label=stage, color=f"C{STAGES.index(stage)}", marker="o" if sparse else None,
                    markersize=4)
        ax.set(title=family, xlabel="step")
        if family in LOG_SCALE:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return fig
