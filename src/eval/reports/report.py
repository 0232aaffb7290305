"""What an evaluation writes: ``metrics.json`` (flat ``task/metric``), ``results.md`` (a table per task),
``samples.jsonl`` (one line per sample) and plots of the metrics over k (``<task>_at_k.png``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

AT_K = re.compile(r"^(pass|maj|bon_logprob|bon_reward)@(\d+)$")
# Under the table over k: what each column estimates (src.eval.metrics.sampling_metrics), so a reader need not guess.
AT_K_NOTE = ("Each metric@k is exact over every k of the n samples: pass@k (some of k correct; Chen et al. 2021's "
             "unbiased estimator), maj@k (their majority answer correct; unparseable samples do not vote, a tie goes "
             "to the earlier sample), bon_*@k (their highest-scoring sample correct; ties to the earlier). At k=1 each "
             "is the share of correct samples.")


def write_report(out_dir: Path, metrics: dict[str, dict[str, float]], samples: list[dict[str, Any]],
                 files: dict[str, Any], header: str) -> dict[str, float]:
    """Write everything; returns the flat metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = {f"{task}/{key}": value for task, values in metrics.items() for key, value in values.items()}
    (out_dir / "metrics.json").write_text(json.dumps(flat, indent=2) + "\n")
    (out_dir / "results.md").write_text(results_markdown(metrics, header))
    with open(out_dir / "samples.jsonl", "w", encoding="utf-8") as f:
        for record in samples:
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    for name, content in files.items():
        (out_dir / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    for task, values in metrics.items():
        if curves := at_k_curves(values):
            plot_at_k(curves, task, out_dir / f"{task}_at_k.png")
    return flat


def results_markdown(metrics: dict[str, dict[str, float]], header: str) -> str:
    lines = [f"# Evaluation\n\n{header}\n"]
    for task, values in metrics.items():
        lines += [f"\n## {task}\n", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {format_value(value)} |" for key, value in values.items() if not AT_K.match(key)]
        if curves := at_k_curves(values):
            ks = sorted({k for curve in curves.values() for k in curve})
            lines += ["", "| k | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
            lines += [f"| {k} | " + " | ".join(format_value(curve.get(k)) for curve in curves.values()) + " |"
                      for k in ks]
            lines += ["", AT_K_NOTE]
    return "\n".join(lines) + "\n"


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def at_k_curves(values: dict[str, float]) -> dict[str, dict[int, float]]:
    """``{"pass": {1: ..., 2: ...}, "maj": {...}}`` from keys like ``pass@2``."""
    curves: dict[str, dict[int, float]] = {}
    for key, value in values.items():
        if found := AT_K.match(key):
            curves.setdefault(found.group(1), {})[int(found.group(2))] = value
    return {name: dict(sorted(curve.items())) for name, curve in curves.items() if len(curve) > 1}


def plot_at_k(curves: dict[str, dict[int, float]], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), marker="o", label=f"{name}@k")
    ax.set(xlabel="k (samples)", ylabel="accuracy", title=task, xscale="log", ylim=(0, 1.02))
    ax.set_xticks(list(next(iter(curves.values()))), labels=[str(k) for k in next(iter(curves.values()))])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
