"""The diversity_toy report: mean ± std over seeds, tables, CE matched at equal pass@1, and the two plots.

``write_report(report, out)`` writes ``out/results.md``, ``frontier.png`` and ``at_k.png`` from run.py's metrics.json.
The hand-written part of results.md (from ``## Reading`` on) survives a rewrite.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

TABLE = [("pass@1", "pass@1"), ("maj@16", "maj@16"), ("pass@16", "pass@16"), ("bon_logprob@16", "bon_logprob@16"),
         ("self_bleu", "self-BLEU ↓div"), ("distinct_2", "distinct-2")]
MATCHED = ["self_bleu", "distinct_2", "pass@16", "maj@16", "bon_logprob@16"]
READING = "## Reading"
KS = range(1, 17)


def summarize(results: dict) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """``{name: {T: {metric: (mean, std)}}}`` over seeds (sample std, ddof=1)."""
    summary = {}
    for name, seeds in results.items():
        temps = next(iter(seeds.values()))["temps"]
        summary[name] = {t: {metric: _mean_std([run["temps"][t][metric] for run in seeds.values()])
                             for metric in temps[t]} for t in temps}
    return summary


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(mean_std: tuple[float, float], metric: str) -> str:
    digits = 1 if metric == "self_bleu" else 3
    return f"{mean_std[0]:.{digits}f} ± {mean_std[1]:.{digits}f}"


def sweep_table(report: dict) -> list[str]:
    lrs = list(next(iter(report["sweep"].values())))
    lines = ["| objective | " + " | ".join(f"lr={lr}" for lr in lrs) + " | chosen lr | val/ce at it, seeds "
             f"{', '.join(map(str, report['settings']['seeds']))} |", "|---|" + "---|" * (len(lrs) + 2)]
    for name, row in report["sweep"].items():
        chosen = f"{report['chosen_lr'][name]:g}"
        cells = [f"**{v:.4f}**" if lr == chosen else f"{v:.4f}" for lr, v in row.items()]
        final = _mean_std([run["val_ce"] for run in report["results"][name].values()])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {chosen} | {final[0]:.4f} ± {final[1]:.4f} |")
    return lines


def temperature_tables(summary: dict) -> list[str]:
    lines = []
    for t in next(iter(summary.values())):
        lines += [f"**T = {t}**", "", "| objective | " + " | ".join(label for _, label in TABLE) + " |",
                  "|---|" + "---|" * len(TABLE)]
        lines += [f"| {name} | " + " | ".join(_cell(summary[name][t][m], m) for m, _ in TABLE) + " |"
                  for name in summary]
        lines.append("")
    return lines


def ce_at(summary: dict, accuracy: float, metric: str, reference: str = "CE") -> float | None:
    """``metric`` of the reference's frontier (piecewise linear in its temperatures' mean pass@1) at ``accuracy``."""
    points = sorted((v["pass@1"][0], v[metric][0]) for v in summary[reference].values())
    xs, ys = zip(*points)
    if not xs[0] <= accuracy <= xs[-1]:
        return None  # outside the range CE's temperatures cover: no extrapolation
    return float(np.interp(accuracy, xs, ys))


def references(summary: dict) -> list[str]:
    """The rows other rows are matched against: CE at each of its lrs (``CE``, ``CE-lr<lr>``)."""
    return [name for name in summary if name == "CE" or name.startswith("CE-lr")]


def matched_table(summary: dict, reference: str = "CE") -> list[str]:
    lines = ["| objective | T | pass@1 | " + " | ".join(f"{m} (CE)" for m in MATCHED) + " |",
             "|---|---|---|" + "---|" * len(MATCHED)]
    for name in (n for n in summary if n not in references(summary)):
        for t, values in summary[name].items():
            accuracy = values["pass@1"][0]
            cells = []
            for m in MATCHED:
                ce, digits = ce_at(summary, accuracy, m, reference), 1 if m == "self_bleu" else 3
                cells.append(f"{values[m][0]:.{digits}f} ({'—' if ce is None else f'{ce:.{digits}f}'})")
            lines.append(f"| {name} | {t} | {accuracy:.3f} | " + " | ".join(cells) + " |")
    return lines


def plot_frontier(summary: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (metric, label) in zip(axes, [("self_bleu", "self-BLEU (higher = less diverse)"),
                                          ("distinct_2", "distinct-2 (higher = more diverse)")]):
        for name, temps in summary.items():
            x = [v["pass@1"] for v in temps.values()]
            y = [v[metric] for v in temps.values()]
            ax.errorbar([m for m, _ in x], [m for m, _ in y], xerr=[s for _, s in x], yerr=[s for _, s in y],
                        marker="o", capsize=3, label=name)
            for t, xi, yi in zip(temps, x, y):
                ax.annotate(f"T={t}", (xi[0], yi[0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("pass@1 (mean correctness of the samples)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_at_k(summary: dict, temperature: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, (kind, title) in zip(axes, [("pass", "pass@k"), ("maj", "maj@k"), ("bon_logprob", "best-of-n (log-prob)")]):
        for i, (name, temps) in enumerate(summary.items()):
            values = temps[temperature]
            mean = np.array([values[f"{kind}@{k}"][0] for k in KS])
            std = np.array([values[f"{kind}@{k}"][1] for k in KS])
            ax.plot(list(KS), mean, color=f"C{i}", label=name)
            ax.fill_between(list(KS), mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.set_title(f"{title}, T={temperature}")
        ax.set_xlabel("k (samples)")
    axes[0].set_ylabel("fraction of prompts")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


PAIRED = [("toyworld_sampled/accuracy", "pass@1"), ("toyworld_sampled/pass@16", "pass@16"),
          ("toyworld_sampled/maj@16", "maj@16"), ("toyworld_sampled/self_bleu", "self-BLEU"),
          ("toyworld_sampled/distinct_2", "distinct-2")]


def paired_table(report: dict) -> list[str]:
    """Each objective minus CE per temperature: difference [95% CI] (run.py's ``paired``, from the samples)."""
    if not report.get("paired"):
        return []
    lines = ["## Each objective minus CE, with intervals", "",
             "At the same temperature (not at matched accuracy): difference of the means over seeds, and a 95% paired "
             "bootstrap interval over the prompts and the seeds (`T<t>/comparison.md`, `T<t>/paired.png`).", "",
             "| T | objective | " + " | ".join(label for _, label in PAIRED) + " |", "|---|---|" + "---|" * len(PAIRED)]
    for t, rows in report["paired"].items():
        found = {(r["method"], r["metric"]): r for r in rows}
        for name in dict.fromkeys(r["method"] for r in rows):
            cells = [found.get((name, metric)) for metric, _ in PAIRED]
            lines.append(f"| {t} | {name} | " + " | ".join(
                "-" if r is None else f"{r['difference']:+.3g} [{r['low']:+.3g}, {r['high']:+.3g}]" for r in cells)
                + " |")
    return [*lines, ""]


def kept_reading(path: Path) -> str:
    text = path.read_text() if path.exists() else ""
    return text[text.index(READING):] if READING in text else f"{READING}\n\n(to be written)\n"


def markdown(report: dict, summary: dict, reading: str) -> str:
    s, timing = report["settings"], report["timing"]
    lines = [
        "# Diversity at matched accuracy on the toy world", "",
        f"Tiny Llama ({', '.join(s['model'])}), {s['steps']} steps of batch 32 for every run. lr swept on "
        f"{s['lrs']} at seed {s['sweep_seed']}, the lowest final val/ce kept; then seeds {s['seeds']} at that lr. "
        f"Each run samples n={s['samples']} answers (max {s['max_new_tokens']} new tokens) to each of {s['prompts']} "
        "held-out problems (eval.py's test split, generation seed 0) at each temperature. Mean ± std over the "
        "seeds.",
        "", "## lr sweep (final val/ce)", "", *sweep_table(report), "",
        "## Per temperature", "",
        "pass@1 is the mean correctness of all 16 samples; maj@16 the majority answer; pass@16 any of 16 correct "
        "(unbiased estimator); bon_logprob@16 the sample with the highest mean token log-prob. self-BLEU is 0-100, "
        "higher = less diverse; distinct-2 per prompt over its 16 samples, higher = more diverse.", "",
        *temperature_tables(summary),
        "## Matched accuracy: each objective against CE's frontier at the same pass@1", "",
        "Value of the objective (mean over seeds), and in brackets CE's value interpolated linearly between its "
        "temperatures at the same mean pass@1 (— where CE's temperatures do not reach that pass@1). CE at its lowest-"
        "val/ce lr (`CE`) and at its runner-up (`CE-lr<lr>`): one seed's val/ce does not rank them reliably.", "",
        *[line for ref in references(summary) for line in (f"Against `{ref}` (lr {report['chosen_lr'][ref]:g}):", "",
                                                           *matched_table(summary, ref), "")],
        *paired_table(report),
        "## Commands and time", "", "```", *report["commands"], "```", "",
        f"lr sweep: {len(s['lrs']) * len(s['objectives'])} runs of `train.py` at seed {s['sweep_seed']} (same command "
        f"with `module.optimizer.lr=` of the grid). The last invocation of run.py took {timing['wall_min']:.1f} min "
        f"wall with `--jobs {s['jobs']}`: training {(timing['sweep_train_s'] + timing['final_train_s']) / 60:.1f} and "
        f"sampling {timing['eval_s'] / 60:.1f} process-minutes; runs an earlier invocation finished were reused and "
        "are not counted here.", "",
        "![frontier](frontier.png)", "", "![at k](at_k.png)", "",
    ]
    return "\n".join(lines) + "\n" + reading


def write_report(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    summary = summarize(report["results"])
    path = out / "results.md"
    path.write_text(markdown(report, summary, kept_reading(path)))
    plot_frontier(summary, out / "frontier.png")
    temps = list(next(iter(summary.values())))
    plot_at_k(summary, "1" if "1" in temps else temps[-1], out / "at_k.png")
    print(path.read_text())
