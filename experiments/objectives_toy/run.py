"""CE vs GEM vs EMO vs convex on the toy world: same data, model and steps, two seeds; each objective against CE.

    python experiments/objectives_toy/run.py                 # train, evaluate (both reused when finished), report
    python experiments/objectives_toy/run.py --report-only   # the report again from results/ (no runs/ needed)
    python experiments/objectives_toy/run.py --smoke         # 4 steps, 2 prompts x 2 samples, under smoke/

Every phase is a real entry-point run, one thread each:

1. ``train.py experiment=<the objective's toy twin>`` (quickstart, gem_toy, emo_toy, convex_toy), shrunk by
   ``--steps`` and the model overrides below, so the runs differ only in ``module`` and ``seed`` (the seed draws the
   initialisation, the training problems and the data order). The run's final validation ``val/ce`` is the held-out
   CE (token mean over the validation responses, prompt masked).
2. ``eval.py eval=toyworld`` (greedy final-answer accuracy) and ``eval.py eval=toy_sampling`` (``--samples`` samples
   at T=1: pass@1 = sampled accuracy, pass@k, maj@k, distinct-n and self-BLEU among a prompt's samples) on the same
   ``--prompts`` problems of the toy world's test split, which no training run sees.
3. The report: the mean over seeds, and each objective minus CE with a 95% paired bootstrap interval over prompts and
   seeds (``python -m src.eval.compare``, from the archived samples in ``results/samples/``).

Every learning rate is its experiment's own (CE's, 2e-3, for all four): this study compares the objectives as
shipped. ``diversity_toy`` tunes each one's lr and reads diversity at matched pass@1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import paired_comparison, parse_args, shown  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402

EXPERIMENTS = {"CE": "quickstart", "GEM": "gem_toy", "EMO": "emo_toy", "convex": "convex_toy"}
# Smaller than quickstart's model so that the runs fit the CPU budget; identical for every objective.
MODEL = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=4"]
EVALS = {"greedy": ["eval=toyworld"], "sampled": ["eval=toy_sampling", "eval.generation.temperature=1.0"]}
# (metrics.json key, column); the sampled task's keys carry its name, toyworld_sampled
COLUMNS = [("val_ce", "held-out CE"), ("toyworld/accuracy", "acc (greedy)"),
           ("toyworld_sampled/pass@1", "pass@1 (sampled)"), ("toyworld_sampled/pass@{k}", "pass@{k}"),
           ("toyworld_sampled/maj@{k}", "maj@{k}"), ("toyworld_sampled/distinct_2", "distinct-2"),
           ("toyworld_sampled/self_bleu", "self-BLEU")]
# the paired table's columns (the sampled task's accuracy is its pass@1)
PAIRED = {"toyworld/accuracy": "acc (greedy)", "toyworld_sampled/accuracy": "pass@1", "toyworld_sampled/pass@{k}":
          "pass@{k}", "toyworld_sampled/distinct_2": "distinct-2", "toyworld_sampled/self_bleu": "self-BLEU"}


def train(args: argparse.Namespace, name: str, seed: int) -> tuple[Path, float]:
    """``train.py experiment=<toy twin>`` into runs/<name>_s<seed> unless it finished; ``(run dir, held-out CE)``."""
    run = args.out / "runs" / f"{name}_s{seed}"
    if not (run / "hf" / "config.json").is_file():
        overrides = [f"experiment={EXPERIMENTS[name]}", *MODEL, f"trainer.max_steps={args.steps}",
                     f"trainer.val_check_interval={args.steps}", "callbacks=default", "validate_before_fit=false",
                     f"seed={seed}", "cpu_threads=1", f"hydra.run.dir={shown(run)}"]
        if name == "convex":  # the warm start keeps convex_toy's fraction of the run (300 of 1000 steps)
            overrides.insert(-1, f"module.ce_warmup_steps={int(0.3 * args.steps)}")
        run_logged("train.py", overrides, args.out / "runs" / "logs" / f"{run.name}.log", ROOT)
    return run, json.loads((run / "metrics.json").read_text())["val/ce"]


def evaluate(args: argparse.Namespace, run: Path, kind: str) -> Path:
    out = args.out / "runs" / "eval" / f"{run.name}_{kind}"
    if not (out / "metrics.json").is_file():
        overrides = [*EVALS[kind], f"eval.num_prompts={args.prompts}", f"model_path={shown(run)}", "cpu_threads=1",
                     "progress=false", f"hydra.run.dir={shown(out)}"]
        if kind == "sampled":
            overrides.append(f"eval.generation.n={args.samples}")
        run_logged("eval.py", overrides, out / "evaluate.log", ROOT)
    return out


def run_study(args: argparse.Namespace) -> dict:
    """Train and evaluate every objective and seed; ``{name: {seed: {"val_ce", "train_s"}}}``, the study's wall."""
    runs: dict[str, dict[str, dict[str, float]]] = {}
    start = time.time()
    for name in args.objectives:
        for seed in args.seeds:
            began = time.time()
            run, val_ce = train(args, name, seed)
            for kind in EVALS:
                evaluate(args, run, kind)
            runs.setdefault(name, {})[str(seed)] = {"val_ce": val_ce, "run_and_eval_s": time.time() - began}
    archive_all(args.out / "runs" / "eval", args.out / "results" / "samples")  # small enough to commit
    return {"runs": runs, "wall_min": (time.time() - start) / 60}


# ---- the report: everything below reads results/ only ----

def means(report: dict, samples: Path) -> dict[str, dict[str, float]]:
    """``{name: {column key: mean over seeds}}`` from the archived evaluations and the runs' held-out CE."""
    k, out = report["settings"]["samples"], {}
    for name, seeds in report["runs"].items():
        found = [{"val_ce": run["val_ce"], **{key: value for kind in EVALS for key, value in
                  json.loads((samples / f"{name}_s{seed}_{kind}" / "metrics.json").read_text()).items()}}
                 for seed, run in seeds.items()]
        out[name] = {key.format(k=k): sum(f[key.format(k=k)] for f in found) / len(found) for key, _ in COLUMNS}
    return out


def paired(report: dict, samples: Path, results: Path) -> dict[str, list[dict]]:
    """Each objective minus CE, greedy and sampled evaluations apart (``results/<kind>/comparison.md``)."""
    return {kind: paired_comparison({name: [samples / f"{name}_s{seed}_{kind}" for seed in seeds]
                                     for name, seeds in report["runs"].items()}, "CE", results / kind)
            for kind in EVALS}


def markdown(report: dict) -> str:
    s, k = report["settings"], report["settings"]["samples"]
    heads = [label.format(k=k) for _, label in COLUMNS]
    lines = [f"Toy world, tiny Llama ({', '.join(s['model'])}), {s['steps']} steps of batch 32, seeds "
             f"{', '.join(map(str, s['seeds']))}, the same data order for every objective at a seed. Held-out CE: "
             f"each run's final validation. Accuracy: greedy on {s['prompts']} problems of the test split; pass@1 "
             f"(sampled accuracy), pass@{k}, maj@{k}, distinct-2 and self-BLEU (lower = more diverse) over {k} "
             f"samples per problem at T=1. Mean over seeds. Whole study: {report['wall_min']:.1f} min wall.", "",
             "| objective | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name, row in report["means"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[key.format(k=k)]:.{1 if 'bleu' in key else 3}f}"
                                                  for key, _ in COLUMNS) + " |")
    wanted = [key.format(k=k) for key in PAIRED]
    lines += ["", f"Each objective minus CE, 95% paired bootstrap intervals over the {s['prompts']} problems and the "
              "seeds (`greedy/comparison.md`, `sampled/comparison.md`):", "",
              "| objective | " + " | ".join(label.format(k=k) for label in PAIRED.values()) + " |",
              "|---|" + "---|" * len(wanted)]
    rows = {(r["method"], r["metric"]): r for kind in report["paired"].values() for r in kind}
    for name in (n for n in report["means"] if n != "CE"):
        cells = [rows.get((name, key)) for key in wanted]
        lines.append(f"| {name} | " + " | ".join(
            "-" if r is None else f"{r['difference']:+.3g} [{r['low']:+.3g}, {r['high']:+.3g}]" for r in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = report["settings"]["samples"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (y, label) in zip(axes, [("toyworld_sampled/distinct_2", "distinct-2"),
                                     ("toyworld_sampled/self_bleu", "self-BLEU (lower = more diverse)")]):
        for name, row in report["means"].items():
            ax.plot(row["toyworld_sampled/pass@1"], row[y], "o", label=name)
            ax.annotate(name, (row["toyworld_sampled/pass@1"], row[y]), fontsize=8)
        ax.set_xlabel("pass@1 (sampled accuracy, T=1)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Toy world: diversity of {k} samples against their accuracy, mean over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps, the same for every objective")
    parser.add_argument("--prompts", type=int, default=100, help="held-out test problems per evaluation")
    parser.add_argument("--samples", type=int, default=8, help="samples per problem at T=1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--objectives", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--report-only", action="store_true", help="the report again from results/")
    args = parse_args(parser, HERE, steps=4, prompts=2, samples=2, seeds=[1], objectives=["CE", "convex"])
    results = args.out / "results"
    results.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((results / "metrics.json").read_text())
    else:
        report = run_study(args)
        report["settings"] = {"model": MODEL, "steps": args.steps, "prompts": args.prompts, "samples": args.samples,
                              "seeds": args.seeds, "experiments": EXPERIMENTS,
                              "command": f"python experiments/objectives_toy/run.py {shlex.join(sys.argv[1:])}"}
    report["means"] = means(report, results / "samples")
    report["paired"] = paired(report, results / "samples", results)
    (results / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    (results / "results.md").write_text(markdown(report))
    plot(report, results / "objectives_toy.png")
    print((results / "results.md").read_text())


if __name__ == "__main__":
    main()
