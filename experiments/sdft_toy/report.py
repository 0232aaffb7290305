"""results.md and forgetting.png from the study's metrics.json (``run.py`` calls these; ``--report-only`` too)."""

from __future__ import annotations

COLUMNS = [("new_acc", "new-task acc (mul)"), ("original_acc", "original-task acc"),
           ("forgetting", "drop from seed"), ("ppl_all", "val ppl (all kinds)"),
           ("ppl_original", "val ppl (original kinds)"), ("step_style", "step-style share"),
           ("replaced_fraction", "replaced fraction")]
COLORS = {"SFT": "tab:red", "SDFT": "tab:blue"}


def cell(summary: dict, key: str, n: int) -> str:
    if key not in summary:
        return "-"
    mean, std = summary[key]
    return f"{mean:.3f}" if n == 1 else f"{mean:.3f} ± {std:.3f}"


def table(report: dict) -> list[str]:
    runs = report["runs"]
    lines = ["| method | n | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for method, summary in report["summary"].items():
        n = sum(r["method"] == method for r in runs.values())
        lines.append(f"| {method} | {n} | " + " | ".join(cell(summary, key, n) for key, _ in COLUMNS) + " |")
    for name, probe in runs.items():  # the seeds measured to choose the seed (run.py, RARE_MUL_WEIGHT)
        if probe["method"] == "probe":
            values = [f"{probe[key]:.3f}" if probe.get(key) is not None and key != "forgetting" else "-"
                      for key, _ in COLUMNS]
            lines.append(f"| (probe, unused) {name} | 1 | " + " | ".join(values) + " |")
    return lines


PAIRED = [("original", "toyworld/accuracy", "original-task acc"), ("new", "toyworld/accuracy", "new-task acc (mul)"),
          ("original", "ppl/seq_nll", "val NLL per sequence (all kinds)"),
          ("new", "ppl/seq_nll", "val NLL per sequence (original kinds)")]


def paired_table(report: dict) -> list[str]:
    """SDFT minus SFT with 95% paired bootstrap intervals over prompts (or sequences) and seeds (run.py's paired)."""
    found = {(kind, r["metric"]): r for kind, rows in report.get("paired", {}).items() for r in rows}
    lines = ["| SDFT minus SFT | SFT | SDFT | difference [95% CI] | prompts |", "|---|---|---|---|---|"]
    for kind, metric, title in PAIRED:
        if (r := found.get((kind, metric))) is not None:
            lines.append(f"| {title} | {r['baseline_value']:.3f} | {r['method_value']:.3f} | {r['difference']:+.3f} "
                         f"[{r['low']:+.3f}, {r['high']:+.3f}] | {r['prompts']} |")
    return lines if len(lines) > 2 else []


def per_run(report: dict) -> list[str]:
    lines = ["| run | new-task acc | original-task acc | val ppl (all) | step-style share | replaced | train s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        replaced = "-" if r.get("replaced_fraction") is None else f"{r['replaced_fraction']:.3f}"
        lines.append(f"| {name} | {r['new_acc']:.3f} | {r['original_acc']:.3f} | {r['ppl_all']:.3f} | "
                     f"{r['step_style']:.3f} | {replaced} | {r['train_s']:.0f} |")
    return lines


def commands(report: dict) -> list[str]:
    runs = report["runs"]
    picks = ["seed"] + [next(n for n, r in runs.items() if r["method"] == m) for m in ("SFT", "SDFT")]
    lines = ["```"] + [runs[name]["command"] for name in picks]
    lines += ["python eval.py model_path=<run dir> hydra.run.dir=<run dir>/eval/original cpu_threads=1 "
              "eval=toy eval.tasks.toyworld.kinds=[add,sub,reverse,length] eval.tasks.toyworld.num_prompts=200 "
              "eval.tasks.toyworld.generation.max_new_tokens=64",
              "python eval.py model_path=<run dir> hydra.run.dir=<run dir>/eval/new cpu_threads=1 "
              "eval=toy eval.tasks.toyworld.kinds=[mul] eval.tasks.toyworld.num_prompts=90 "
              "eval.tasks.toyworld.generation.max_new_tokens=64 eval.tasks.ppl.data.kinds=[add,sub,reverse,length]",
              "```"]
    return lines


def markdown(report: dict, reading: str = "") -> str:
    s = report["settings"]
    tuned = next(r for r in report["runs"].values() if r["method"] == "SFT")
    train_min = sum(r["train_s"] for r in report["runs"].values()) / 60
    lines = [
        "# SDFT vs SFT on the toy world: new-task gain against forgetting",
        "",
        f"Seed model: the quickstart tiny Llama trained on `{s['seed_kinds']}` toy kinds. Fine-tuning from its "
        f"`hf/` export: {tuned['steps']} steps, batch 16, peak lr {tuned['lr']:g} (cosine, 3% warmup), seeds "
        f"{s['seeds']}, on the 400 "
        "step-style multiplication rows of `examples/toy_narrow.json` (360 train, 40 validation). SDFT trains on the "
        "same rows after the seed's own rewrites (sampled, T 0.95, top-p 0.7) replaced every gold whose final answer "
        "they got right. Mean ± std over seeds (sample std).",
        "",
        *table(report),
        "",
        "- new-task acc: greedy final-answer accuracy on all 90 held-out multiplication problems (style not scored);",
        "- original-task acc: greedy accuracy on 200 held-out add/sub/reverse/length problems; drop from seed = "
        "the seed's minus the run's (forgetting);",
        "- val ppl: token perplexity of the responses of the toy validation set (200 rows; all kinds, or the "
        "original four only);",
        "- step-style share: the held-out multiplication answers that start with `Step 1:` (the narrow task's style);",
        "- replaced fraction: `<run>/distill/summary.json` (rows whose gold was replaced by the seed's rewrite).",
        "",
        *([*paired_table(report), "",
           "From the samples archived in `samples/` (`python -m src.eval.compare`, `original/` and `new/`): the same "
           "held-out prompts for every run, resampled with the seeds; the NLL per sequence is `eval=ppl`'s `seq_nll`, "
           "the mean of each validation response's own token NLL.", ""] if paired_table(report) else []),
        "Per run:",
        "",
        *per_run(report),
        "",
        f"Wall time: {s['wall_min']:.1f} min for the invocation that wrote this report (runs and evaluations "
        f"already on disk are reused, not redone); {train_min:.1f} min of training recorded over all runs listed "
        "(one process at a time, one thread, a 2-core CPU shared with another job); each evaluation pair took "
        "25-50 s.",
        "",
        "Commands (from the project root; each fine-tuned run differs only in `experiment`, `seed` and the run dir):",
        "",
        *commands(report),
    ]
    if reading:
        lines += ["", "## Reading", "", reading]
    return "\n".join(lines) + "\n"


def plot(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, summary = report["runs"], report["summary"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    seed = runs["seed"]
    ax.scatter([seed["new_acc"]], [seed["original_acc"]], marker="*", s=300, color="black", label="seed", zorder=3)
    for method, color in COLORS.items():
        points = [(r["new_acc"], r["original_acc"]) for r in runs.values() if r["method"] == method]
        ax.scatter(*zip(*points), color=color, alpha=0.45, s=40, label=f"{method} runs")
        (mx, sx), (my, sy) = summary[method]["new_acc"], summary[method]["original_acc"]
        ax.errorbar([mx], [my], xerr=[sx], yerr=[sy], color=color, marker="D", markersize=9, capsize=4,
                    label=f"{method} mean ± std", zorder=4)
    ax.set_xlabel("new-task accuracy (held-out multiplication)")
    ax.set_ylabel("original-task accuracy (add/sub/reverse/length)")
    ax.set_title("Forgetting vs new-task gain (toy world)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
