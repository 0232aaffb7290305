"""``comparison.png`` of ``python -m src.eval.compare``: accuracy against diversity when the runs allow it, else one
panel per metric, a line against the swept value when the runs differ in one number (``module.beta``), bars
labelled by run otherwise. Panels are laid out at most ``COLUMNS`` wide and ``MAX_PANELS`` in all, so the figure
stays readable at its natural size."""

from __future__ import annotations

import math
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

from src.eval.reports.curves import SPEED
from src.eval.reports.swept import numeric_axis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from src.eval.reports.comparison import EvalRun

ACCURACY = ("accuracy", "pass@1")  # the first one a task has is its accuracy axis
DIVERSITY = {"self_bleu": "self-BLEU (lower = more diverse)", "distinct_2": "distinct-2 (higher = more diverse)"}
# In the table, not the figure: evaluation counts and timings, a training run's step, epoch, learning rate, speed.
BOOKKEEPING = {"prompts", "samples_per_prompt", "empty_responses", "truncated_rate", "mean_new_tokens", "seconds",
               "tokens", "sequences", "nll", "disagreements", "mean_response_chars", "step", "epoch", "lr-*", *SPEED}
COLUMNS = 3
PANEL = (4.0, 3.0)  # inches
MAX_PANELS = 12


def metric(key: str) -> str:
    return key.split("/", 1)[-1]


def charted(cols: list[str]) -> list[str]:
    """The table's columns worth a panel: bookkeeping left out (unless that is all there is), validation first."""
    main = [c for c in cols if not any(fnmatch(metric(c), pattern) for pattern in BOOKKEEPING)] or cols
    return sorted(main, key=lambda c: not c.startswith("val/"))[:MAX_PANELS]


def figure(runs: list[EvalRun], cols: list[str]) -> tuple[Figure, str]:
    """The figure and which kind it is: ``"tradeoff"``, ``"lines"`` or ``"bars"``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if tasks := tradeoff_tasks(runs):
        return _tradeoff(plt, runs, tasks), "tradeoff"
    shown = charted(cols)
    fig, axes = _grid(plt, len(shown))
    axis = numeric_axis([run.swept for run in runs])
    for ax, key in zip(axes, shown):
        if axis:
            _line(ax, runs, key, *axis)
        else:
            _bars(plt, ax, runs, key)
    fig.tight_layout()
    return fig, "lines" if axis else "bars"


def tradeoff_tasks(runs: list[EvalRun]) -> dict[str, tuple[str, list[str]]]:
    """``{task: (accuracy metric, [diversity metrics])}`` for the tasks where some row has both."""
    found = {}
    for task in dict.fromkeys(key.split("/")[0] for run in runs for key in run.metrics):
        for acc in ACCURACY:
            both = [d for d in DIVERSITY if any({f"{task}/{acc}", f"{task}/{d}"} <= run.metrics.keys() for run in runs)]
            if both:
                found[task] = (acc, both)
                break
    return found


def _grid(plt: Any, panels: int) -> tuple[Figure, list[Any]]:
    cols = max(1, min(COLUMNS, panels))
    rows = max(1, math.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL[0] * cols, PANEL[1] * rows), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    return fig, list(axes.flat[:panels])


def _line(ax: Any, runs: list[EvalRun], key: str, swept: str, xs: list[float]) -> None:
    points = sorted((x, run.metrics[key]) for x, run in zip(xs, runs) if key in run.metrics)
    if points:
        ax.plot(*zip(*points), marker="o")
    if min(xs) > 0 and max(xs) / min(xs) >= 100:  # a learning-rate-like sweep spans decades
        ax.set_xscale("log")
    ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
    ax.set(title=key, xlabel=swept)
    ax.grid(alpha=0.3)


def _bars(plt: Any, ax: Any, runs: list[EvalRun], key: str) -> None:
    values = [run.metrics.get(key, float("nan")) for run in runs]
    ax.bar(range(len(runs)), values, color=[plt.cm.tab10(i % 10) for i in range(len(runs))])
    ax.set_xticks(range(len(runs)), [run.label for run in runs], fontsize=8, rotation=30, ha="right")
    ax.set_title(key)
    ax.grid(axis="y", alpha=0.3)


def _tradeoff(plt: Any, runs: list[EvalRun], tasks: dict[str, tuple[str, list[str]]]) -> Figure:
    fig, axes = plt.subplots(len(tasks), len(DIVERSITY), figsize=(11, 4.2 * len(tasks)), squeeze=False)
    for row, (task, (acc, present)) in zip(axes, tasks.items()):
        for ax, diversity in zip(row, DIVERSITY):
            keys = (f"{task}/{diversity}", f"{task}/{acc}")
            if diversity not in present:
                ax.axis("off")
                continue
            for i, run in ((i, run) for i, run in enumerate(runs) if set(keys) <= run.metrics.keys()):
                x, y = (run.metrics[k] for k in keys)
                ax.scatter(x, y, color=plt.cm.tab10(i % 10), zorder=3)
                ax.annotate(run.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            ax.set(xlabel=DIVERSITY[diversity], ylabel=f"{task}/{acc}", title=f"{task}: {acc} vs {diversity}")
            ax.margins(x=0.35, y=0.15)  # room for the labels
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
