"""``paired.png`` of ``python -m src.eval.compare``: per metric, each method's difference from the baseline with its
95% bootstrap interval as an error bar, and a line at zero (an interval that crosses it is no evidence either way).
The numbers are the ``## Paired differences`` table's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.eval.reports.compare_figure import MAX_PANELS, _grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from src.eval.reports.paired import PairedRow


def paired_figure(rows: list[PairedRow]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(row.metric for row in rows))[:MAX_PANELS]
    fig, axes = _grid(plt, len(metrics))
    for ax, metric in zip(axes, metrics):
        shown = [row for row in rows if row.metric == metric]
        for y, row in enumerate(shown):
            i = row.interval
            ax.errorbar(i.difference, y, xerr=[[i.difference - i.low], [i.high - i.difference]], fmt="o",
                        color=plt.cm.tab10(y % 10), capsize=4)
        ax.axvline(0, color="gray", lw=1, ls="--")
        ax.set_yticks(range(len(shown)), [row.method for row in shown], fontsize=8)
        ax.set_ylim(-0.5, len(shown) - 0.5)
        ax.set(title=metric, xlabel=f"difference from {shown[0].baseline} (95% CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
