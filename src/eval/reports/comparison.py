"""Several evaluations or training runs as one table: each run loaded, labelled by what differs between the runs,
and its metrics as columns; the machinery of ``python -m src.eval.compare`` (``src/eval/compare.py``).

The figure is ``compare_figure.py``'s; the paired differences and their figure are ``paired.py``'s and
``paired_figure.py``'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.eval.reports.compare_figure import figure
from src.eval.reports.paired import PairedRow, group_methods, has_samples, paired_markdown, paired_rows
from src.eval.reports.paired_figure import paired_figure
from src.eval.reports.report import AT_K, format_value
from src.eval.reports.swept import swept, text

SETTINGS = {"temperature": "T", "top_p": "top_p", "top_k": "top_k", "n": "n", "max_new_tokens": "max_new_tokens",
            "stop": "stop", "seed": "seed"}  # batch_size is left out: it sets throughput, not the decoding
RUN_FILES = ("hf", "checkpoints", "last")  # model_path may point inside a train.py run directory


@dataclass
class EvalRun:
    path: Path
    metrics: dict[str, float]
    config: DictConfig | None
    label: str = ""
    swept: dict[str, str] = field(default_factory=dict)  # the overrides that differ between the compared runs


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
        raise FileNotFoundError(f"{path}: no metrics.json {where}; is it an eval.py output directory?")
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
                values.setdefault(key, {})[task] = text(value)
    parts = {}
    for key in sorted(values, key=list(SETTINGS).index):
        by_task = values[key]
        parts[key] = (f"{SETTINGS[key]}={next(iter(by_task.values()))}" if len(set(by_task.values())) == 1
                      else " ".join(f"{task}:{SETTINGS[key]}={v}" for task, v in by_task.items()))
    return parts


def set_labels(runs: list[EvalRun], label_keys: list[str]) -> None:
    """What differs between the runs: the overrides (``module.beta=0.3``); for evaluations also the model and the
    decoding settings that differ between the runs that have them. Then ``label_keys``."""
    settings = [decoding(run) for run in runs]
    differing = {key for s in settings for key in s if len({o[key] for o in settings if key in o}) > 1}
    for run, setting, overrides in zip(runs, settings, swept([r.path for r in runs], [r.config for r in runs])):
        run.swept = overrides
        evaluation = run.config is not None and "model_path" in run.config
        parts = [f"{key}={value}" for key, value in overrides.items() if not (evaluation and _told(key))]
        if evaluation or not parts:  # a training run's directory name (0, 1, ...) says nothing a sweep varied
            parts = [model_name(run), *(part for key, part in setting.items() if key in differing), *parts]
        for key in label_keys:
            value = OmegaConf.select(run.config, key) if run.config is not None else None
            parts.append(f"{key.rsplit('.', 1)[-1]}={text(value)}")
        run.label = " ".join(dict.fromkeys(parts))
    counts = Counter(run.label for run in runs)
    for run in runs:  # rows that nothing above tells apart are told apart by their directory
        run.label += f" ({run.path.parent.name}/{run.path.name})" if counts[run.label] > 1 else ""


def _told(key: str) -> bool:
    """An evaluation's override that its label already tells: the model, or a decoding setting (``T=0.6``)."""
    return key in ("model_path", "predictions") or (".generation." in key and key.rsplit(".", 1)[-1] in SETTINGS)


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


def write_figure(runs: list[EvalRun], cols: list[str], path: Path) -> str:
    """Write ``comparison.png``; returns which kind it is ("tradeoff", "lines" or "bars")."""
    import matplotlib.pyplot as plt

    fig, kind = figure(runs, cols)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return kind


def paired_section(runs: list[EvalRun], cols: list[str], groups: dict[str, list[Path]], args: argparse.Namespace,
                   out: Path) -> str:
    """The paired differences (and ``paired.png``, ``paired.json``) when every run has samples and there are two
    methods, else ""."""
    methods = group_methods(runs, groups)
    asked = bool(groups or args.baseline)
    if args.resamples <= 0 or len(methods) < 2 or not has_samples(runs):
        if asked:
            raise ValueError("--group/--baseline need two methods and every run's samples.jsonl (and --resamples > 0)")
        return ""
    rows, left_out = paired_rows(methods, args.baseline, cols, args.resamples, args.bootstrap_seed,
                                 args.allow_missing)
    (out / "paired.json").write_text(json.dumps([paired_record(row) for row in rows], indent=1) + "\n")
    if rows:
        import matplotlib.pyplot as plt

        fig = paired_figure(rows)
        fig.savefig(out / "paired.png", dpi=100)
        plt.close(fig)
    return "\n" + paired_markdown(rows, left_out, methods, args.resamples, args.bootstrap_seed)


def paired_record(row: PairedRow) -> dict:
    """A paired row as ``paired.json`` holds it: what a study's report reads instead of parsing ``comparison.md``."""
    i = row.interval
    return {"metric": row.metric, "baseline": row.baseline, "method": row.method, "baseline_value": i.baseline,
            "method_value": i.method, "difference": i.difference, "low": i.low, "high": i.high,
            "prompts": row.prompts, "seeds": list(row.seeds), "dropped": row.dropped}
