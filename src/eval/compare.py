"""Several evaluations side by side: one table and one figure.

    python -m src.eval.compare EVAL_DIR [EVAL_DIR ...] [--out-dir DIR] [--label-key KEY] [--metrics PATTERN ...]

Each EVAL_DIR is an ``evaluate.py`` output directory (``metrics.json`` with flat ``task/metric`` keys, and
``.hydra/config.yaml``), or a Hydra multirun directory, which stands for its numbered job directories. A row is
labelled by the evaluated model (the run directory name of ``model_path``) and every decoding setting that differs
between the rows (``T=0.6``). Writes ``comparison.md`` (a column per metric; of pass@k, maj@k and bon_*@k only the
largest k of each row, unless ``--metrics`` selects columns) and ``comparison.png``: accuracy against diversity
(self-BLEU and distinct-2, one point per row) when a task has both -- the temperature-sweep trade-off -- and otherwise
a grouped bar chart of the table's main metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.eval.report import AT_K, format_value

ACCURACY = ("accuracy", "pass@1")  # the first one a task has is its accuracy axis
DIVERSITY = {"self_bleu": "self-BLEU (lower = more diverse)", "distinct_2": "distinct-2 (higher = more diverse)"}
BOOKKEEPING = {"prompts", "samples_per_prompt", "empty_responses", "truncated_rate", "mean_new_tokens", "seconds",
               "tokens", "sequences", "nll", "disagreements", "mean_response_chars"}  # in the table, not the bars
SETTINGS = {"temperature": "T", "top_p": "top_p", "top_k": "top_k", "n": "n", "max_new_tokens": "max_new_tokens",
            "stop": "stop", "seed": "seed"}  # batch_size is left out: it sets throughput, not the decoding
RUN_FILES = ("hf", "checkpoints", "last")  # model_path may point inside a train.py run directory


@dataclass
class EvalRun:
    path: Path
    metrics: dict[str, float]
    config: DictConfig | None
    label: str = ""


def expand(path: str | Path) -> list[Path]:
    """``[path]`` for an evaluation directory; the numbered job directories (in order) for a multirun directory."""
    path = Path(path)
    if (path / "metrics.json").is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory")
    jobs = sorted((d for d in path.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    done = [job for job in jobs if (job / "metrics.json").is_file()]
    if not done:
        where = f"nor in any of its {len(jobs)} job directories" if jobs else "(nor numbered multirun job directories)"
        raise FileNotFoundError(f"{path}: no metrics.json {where}; is it an evaluate.py output directory?")
    for job in jobs:
        if job not in done:
            print(f"warning: {job} has no metrics.json (a failed job?); left out", file=sys.stderr)
    return done


def load(path: Path) -> EvalRun:
    config = path / ".hydra" / "config.yaml"
    metrics = json.loads((path / "metrics.json").read_text())
    return EvalRun(path, metrics, OmegaConf.load(config) if config.is_file() else None)


def model_name(run: EvalRun) -> str:
    model = run.config.get("model_path") if run.config is not None else None
    if not model:
        return run.path.name  # a predictions file was scored, or no config was saved
    parts = list(Path(str(model)).parts)
    while len(parts) > 1 and (parts[-1] in RUN_FILES or parts[-1].endswith(".ckpt")):
        parts.pop()
    return parts[-1]


def decoding(run: EvalRun) -> dict[str, str]:
    """``{setting: label part}`` from ``eval.generation`` (one task) or ``eval.tasks.<name>.generation``: ``"T=0.6"``
    when every task of the run decodes with the same value, else ``"toyworld:T=0 math:T=0.6"``."""
    node = run.config.get("eval") if run.config is not None else None
    tasks = (node.tasks if "tasks" in node else {node.get("name", "eval"): node}) if node else {}
    values: dict[str, dict[str, str]] = {}  # setting -> {task: value}
    for task, spec in tasks.items():
        for key, value in (spec.get("generation") or {}).items() if isinstance(spec, DictConfig) else ():
            if key in SETTINGS:
                values.setdefault(key, {})[task] = _text(value)
    parts = {}
    for key in sorted(values, key=list(SETTINGS).index):
        by_task = values[key]
        parts[key] = (f"{SETTINGS[key]}={next(iter(by_task.values()))}" if len(set(by_task.values())) == 1
                      else " ".join(f"{task}:{SETTINGS[key]}={v}" for task, v in by_task.items()))
    return parts


def set_labels(runs: list[EvalRun], label_keys: list[str]) -> None:
    """The model, the decoding settings that differ between the runs that have them, and ``label_keys``."""
    settings = [decoding(run) for run in runs]
    differing = {key for s in settings for key in s if len({o[key] for o in settings if key in o}) > 1}
    for run, setting in zip(runs, settings):
        parts = [model_name(run)] + [part for key, part in setting.items() if key in differing]
        for key in label_keys:
            value = OmegaConf.select(run.config, key) if run.config is not None else None
            parts.append(f"{key.rsplit('.', 1)[-1]}={_text(value)}")
        run.label = " ".join(dict.fromkeys(parts))
    counts = Counter(run.label for run in runs)
    for run in runs:  # rows that nothing above tells apart are told apart by their directory
        run.label += f" ({run.path.parent.name}/{run.path.name})" if counts[run.label] > 1 else ""


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def columns(runs: list[EvalRun], patterns: list[str] | None) -> list[str]:
    """Every metric any row has (first-seen order); of each at-k curve only each row's largest k."""
    keys = list(dict.fromkeys(key for run in runs for key in run.metrics))
    if patterns:
        chosen = [k for k in keys if any(fnmatch(k, p) or fnmatch(_metric(k), p) for p in patterns)]
        if not chosen:
            raise ValueError(f"--metrics {' '.join(patterns)} matches none of: {', '.join(keys)}")
        return chosen
    largest: set[str] = set()
    for run in runs:
        best: dict[tuple[str, str], tuple[int, str]] = {}
        for key in run.metrics:
            if found := AT_K.match(_metric(key)):
                curve = (key.split("/")[0], found.group(1))
                best[curve] = max(best.get(curve, (0, key)), (int(found.group(2)), key))
        largest |= {key for _, key in best.values()}
    return [k for k in keys if not AT_K.match(_metric(k)) or k in largest]


def _metric(key: str) -> str:
    return key.split("/", 1)[-1]


def markdown(runs: list[EvalRun], cols: list[str]) -> str:
    lines = ["| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + " | ".join([run.label] + [format_value(run.metrics.get(c)) for c in cols]) + " |" for run in runs]
    lines += ["", "Directories:", ""] + [f"- {run.label}: `{run.path}`" for run in runs]
    return "\n".join(lines) + "\n"


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


def write_figure(runs: list[EvalRun], cols: list[str], path: Path) -> str:
    """The accuracy/diversity scatter if a task allows it, else bars; returns which ("tradeoff" or "bars")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = tradeoff_tasks(runs)
    fig = _tradeoff(plt, runs, tasks) if tasks else _bars(plt, runs, cols)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return "tradeoff" if tasks else "bars"


def _tradeoff(plt: Any, runs: list[EvalRun], tasks: dict[str, tuple[str, list[str]]]) -> Any:
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
    return fig


def _bars(plt: Any, runs: list[EvalRun], cols: list[str]) -> Any:
    main = [c for c in cols if _metric(c) not in BOOKKEEPING] or cols
    fractions = [c for c in main if all(0 <= run.metrics.get(c, 0) <= 1 for run in runs)]
    panels = ([fractions] if fractions else []) + [[c] for c in main if c not in fractions]  # one scale per panel
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + 1.2 * len(main) + 2 * len(panels), 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": [len(p) for p in panels]})
    width = 0.8 / len(runs)
    for ax, metrics in zip(axes[0], panels):
        for i, run in enumerate(runs):
            xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(metrics))]
            ax.bar(xs, [run.metrics.get(m, float("nan")) for m in metrics], width, color=plt.cm.tab10(i % 10),
                   label=run.label)
        ax.set_xticks(range(len(metrics)), metrics, fontsize=7, rotation=30, ha="right")
        if metrics is fractions:
            ax.set_ylim(0, 1.05)
    axes[0][0].legend(fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", help="evaluate.py output directories or multirun directories")
    parser.add_argument("--out-dir", help="where to write comparison.md/.png (default: the dirs' common parent)")
    parser.add_argument("--label-key", action="append", default=[],
                        help="a dotted config key added to every label, e.g. eval.num_prompts (repeatable)")
    parser.add_argument("--metrics", nargs="+", help="columns: glob patterns on task/metric or metric (pass@*)")
    args = parser.parse_args(argv)
    paths = dict.fromkeys(job.resolve() for d in args.dirs for job in expand(d))
    runs = [load(path) for path in paths]
    set_labels(runs, args.label_key)
    cols = columns(runs, args.metrics)
    out = Path(args.out_dir or os.path.commonpath([Path(d).resolve() for d in args.dirs]))
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(runs, cols)
    (out / "comparison.md").write_text(f"# Comparison of {len(runs)} evaluations\n\n{table}")
    kind = write_figure(runs, cols, out / "comparison.png")
    print(table + f"\nwrote {out / 'comparison.md'} and {out / 'comparison.png'} ({kind})")


if __name__ == "__main__":
    main()
