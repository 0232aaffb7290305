"""SDFT vs SFT on the toy world: does self-distillation forget less at a similar new-task gain? (Yang et al. 2024)

    python experiments/sdft_toy/run.py                   # seed model, 3 seeds x {SFT, SDFT}, evaluate, results/
    python experiments/sdft_toy/run.py --variant lr2e-4 --lr 2e-4    # the same at a smaller lr, results/lr2e-4/
    python experiments/sdft_toy/run.py --skip-train      # re-evaluate and re-report the runs already in runs/
    python experiments/sdft_toy/run.py --report-only     # rewrite results.md and the plot from metrics.json
    python experiments/sdft_toy/run.py --smoke           # 4-step seed, 1 seed x 4 steps, 4 prompts, under smoke/

Re-runnable: a run whose ``hf/`` export exists is not trained again, an evaluation whose ``metrics.json`` exists is
not run again (``--reeval`` forces it). Everything goes through the project's own entry points:

1. The seed model: ``train.py experiment=quickstart`` with multiplication rare in its data (``--seed-kinds``; why:
   ``RARE_MUL_WEIGHT``). Seeds trained on the other kinds are evaluated as probes when they are in runs/.
2. From the seed's ``hf/`` export, ``train.py experiment=sft_toy`` (the 400 step-style multiplication golds of
   ``examples/toy_narrow.json``) and ``experiment=sdft_toy`` (the same rows after the seed's filtered rewrites), with
   the same steps, lr, schedule and data order at each ``seed``. Each seed also draws its own rewrites
   (``distill.generation.seed``), so the SDFT spread includes the distillation's.
3. ``eval.py eval=toy`` twice per model: original kinds (greedy accuracy on held-out add/sub/reverse/length,
   perplexity of the whole toy validation set) and the new task (greedy final-answer accuracy on all 90 held-out
   multiplication problems, perplexity of the original kinds' validation set).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import yaml
from report import markdown, plot  # beside this file: the table and the figure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import paired_comparison, parse_args, shown  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402

ORIGINAL = "[add,sub,reverse,length]"
METHODS = {"SFT": "sft_toy", "SDFT": "sdft_toy"}
# What the experiments read from ${paths.root_dir}, named here (relative to the commands' working directory, the
# project root) so that the study runs whatever PROJECT_ROOT says.
NARROW = shown(ROOT / "examples" / "toy_narrow.json")
# The step-style golds are 46 tokens + EOS; 64 leaves room so that no answer is cut by the eval's 48-token default.
EVALS = {
    "original": ["eval=toy", f"eval.tasks.toyworld.kinds={ORIGINAL}", "eval.tasks.toyworld.num_prompts=200",
                 "eval.tasks.toyworld.generation.max_new_tokens=64"],
    "new": ["eval=toy", "eval.tasks.toyworld.kinds=[mul]", "eval.tasks.toyworld.num_prompts=90",
            "eval.tasks.toyworld.generation.max_new_tokens=64", f"eval.tasks.ppl.data.kinds={ORIGINAL}"],
}
STEP_STYLE = re.compile(r"^\s*Step 1:")
# Measured (results/results.md, probes): a seed trained on every kind solves 90/90 held-out multiplications (the 81
# factor pairs are all in its 800 mul-bearing training rows: no gain left), one trained without mul 7/90 (SDFT's
# filter would keep ~8% of rewrites: SDFT ~ SFT). With each other kind 30 times as likely (~69 mul rows, 48 of the 81
# pairs) the seed solves part of the task in its own style, the setting SDFT is about.
RARE_MUL_WEIGHT = 30


def call(script: str, overrides: list[str], log: Path) -> float:
    return run_logged(script, overrides, log, ROOT)


def train_run(run_dir: Path, overrides: list[str], args: argparse.Namespace) -> float:
    """Train into ``run_dir`` unless its ``hf/`` export exists; returns its recorded training seconds."""
    wall, runs = run_dir / "wall.json", args.out / "runs"
    if not (run_dir / "hf" / "config.json").is_file():
        if args.skip_train:
            raise FileNotFoundError(f"--skip-train: {run_dir} has no hf/ export")
        seconds = call("train.py", [*overrides, f"hydra.run.dir={run_dir}", "cpu_threads=1"], runs / "logs" /
                       f"{run_dir.relative_to(runs).as_posix().replace('/', '-')}.log")
        wall.write_text(json.dumps({"train_s": seconds}))
    return json.loads(wall.read_text())["train_s"] if wall.is_file() else float("nan")


def seed_overrides(kinds: str, steps: int | None) -> list[str]:
    """``all``: every kind; ``original``: no multiplication; ``rare-mul``: multiplication 1 draw in 121
    (``make_problems`` draws a kind uniformly from the list, so repeating the others weights them)."""
    listed = {"all": None, "original": ORIGINAL,
              "rare-mul": "[" + ",".join(["add,sub,reverse,length"] * RARE_MUL_WEIGHT + ["mul"]) + "]"}[kinds]
    shortened = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}"] if steps else []
    return ["experiment=quickstart"] + ([f"data.kinds={listed}"] if listed else []) + shortened


def finetune_overrides(method: str, seed: int, args: argparse.Namespace, seed_hf: Path) -> list[str]:
    """The experiment already sets model=pretrained (float32), the toy tokenizer, and its lr (unless ``lr``)."""
    overrides = [f"experiment={METHODS[method]}", "model=pretrained", f"model.name_or_path={seed_hf}", f"seed={seed}",
                 f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}"]
    overrides += [f"module.optimizer.lr={args.lr}"] if args.lr is not None else []
    if method == "SDFT":  # sdft_toy trains on its distill.path's rewrites
        overrides += [f"distill.path={NARROW}", f"distill.cache_dir={args.out / 'runs' / 'cache'}",
                      f"distill.generation.seed={seed}"]
    else:
        overrides.append(f"data.path={NARROW}")
    return overrides


def evaluate(run_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    """Both evaluations of ``run_dir`` (each cached in ``run_dir/eval/<name>/``), as one flat dict."""
    out = {"eval_s": 0.0}
    limit = [f"limit={args.eval_limit}"] if args.eval_limit else []
    for name, overrides in EVALS.items():
        eval_dir = run_dir / "eval" / name
        if args.reeval or not (eval_dir / "metrics.json").is_file():
            out["eval_s"] += call("eval.py", [*overrides, *limit, f"model_path={run_dir}", f"hydra.run.dir={eval_dir}",
                                              "cpu_threads=1", "progress=false"], eval_dir / "evaluate.log")
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        out[f"{name}_acc"] = metrics["toyworld/accuracy"]
        out[f"ppl_{'all' if name == 'original' else 'original'}"] = metrics["ppl/ppl"]
    out["step_style"] = step_style_fraction(run_dir / "eval" / "new" / "samples.jsonl")
    return out


def step_style_fraction(samples: Path) -> float:
    """The share of held-out multiplication answers written in the narrow task's step style ("Step 1: ...")."""
    records = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    texts = [r["response"] for r in records if r["task"] == "toyworld"]  # not eval=toy's ppl (one per sequence)
    return sum(bool(STEP_STYLE.match(t)) for t in texts) / len(texts)


def replaced_fraction(run_dir: Path) -> float | None:
    summary = run_dir / "distill" / "summary.json"
    return json.loads(summary.read_text())["replaced_fraction"] if summary.is_file() else None


def run_study(args: argparse.Namespace) -> dict:
    root = args.out / "runs"
    seed_dir = root / f"seed-{args.seed_kinds}"
    runs = {"seed": {**evaluate_after(seed_dir, seed_overrides(args.seed_kinds, args.seed_steps), args),
                     "method": "seed"}}
    for method in METHODS:
        for seed in args.seeds:
            run_dir = root / args.variant / f"{method.lower()}-s{seed}"
            overrides = finetune_overrides(method, seed, args, seed_dir / "hf")
            runs[run_dir.name] = {**evaluate_after(run_dir, overrides, args), "method": method, "seed": seed,
                                  "replaced_fraction": replaced_fraction(run_dir)}
            print(run_dir.name, runs[run_dir.name], flush=True)
    for kinds in ("all", "original"):  # the seeds that were measured and not used (see RARE_MUL_WEIGHT)
        probe = root / f"seed-{kinds}"
        if kinds != args.seed_kinds and (probe / "hf").is_dir():
            runs[probe.name] = {**evaluate_after(probe, seed_overrides(kinds, args.seed_steps), args),
                                "method": "probe"}
    return runs


def evaluate_after(run_dir: Path, overrides: list[str], args: argparse.Namespace) -> dict:
    train_s = train_run(run_dir, overrides, args)
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    return {"train_s": train_s, "lr": config["module"]["optimizer"]["lr"], "steps": config["trainer"]["max_steps"],
            **evaluate(run_dir, args), "command": "python train.py " + " ".join(
        [*overrides, f"hydra.run.dir={shown(run_dir)}", "cpu_threads=1"])}


def summarise(runs: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {metric: (mean, std)}}`` over seeds; ``forgetting``: the seed's original accuracy minus the run's."""
    base = runs["seed"]["original_acc"]
    keys = ["new_acc", "original_acc", "forgetting", "ppl_all", "ppl_original", "step_style", "replaced_fraction"]
    table = {}
    for method in ["seed", *METHODS]:
        rows = [{**r, "forgetting": base - r["original_acc"]} for r in runs.values() if r["method"] == method]
        table[method] = {}
        for key in keys:
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                table[method][key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return table


def paired(report: dict, out: Path) -> dict[str, list[dict]]:
    """SDFT minus SFT on each evaluation (``original``, ``new``) with 95% paired bootstrap intervals over prompts and
    seeds, from the archived samples (``python -m src.eval.compare``, ``<out>/<evaluation>/comparison.md``)."""
    runs = report["runs"]
    groups = {m: [name for name, r in runs.items() if r["method"] == m] for m in METHODS}
    if not all(groups.values()):
        return {}
    return {kind: paired_comparison({m: [out / "samples" / name / "eval" / kind for name in names]
                                     for m, names in groups.items()}, "SFT", out / kind) for kind in EVALS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps, the same for SFT and SDFT")
    parser.add_argument("--lr", type=float, default=None, help="peak lr (cosine, 3%% warmup; default: the "
                        "experiment's), the same for both")
    parser.add_argument("--seed-kinds", choices=["rare-mul", "all", "original"], default="rare-mul",
                        help="the seed's training kinds: mul 1 in 121 draws, every kind, or all but mul")
    parser.add_argument("--variant", default="", help="a name for a non-default --steps/--lr: its runs go to "
                        "runs/<variant>/ and its report to results/<variant>/ (the seed model is shared)")
    parser.add_argument("--seed-steps", type=int, help="the seed model's steps (default: quickstart's); an existing "
                        "seed in runs/ is reused whatever its steps")
    parser.add_argument("--eval-limit", type=int, help="at most this many prompts per evaluation (eval.py limit=)")
    parser.add_argument("--skip-train", action="store_true", help="evaluate the runs already in runs/, train none")
    parser.add_argument("--reeval", action="store_true", help="re-run evaluations that already have metrics.json")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from metrics.json")
    args = parse_args(parser, HERE, seeds=[1], steps=4, seed_steps=4, eval_limit=4)
    out = args.out / "results" / args.variant
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((out / "metrics.json").read_text())
    else:
        start = time.time()
        runs = run_study(args)
        skip = ("skip_train", "reeval", "report_only", "out")
        settings = {k: v for k, v in vars(args).items() if k not in skip}
        report = {"settings": {**settings, "wall_min": (time.time() - start) / 60}, "runs": runs}
        report["summary"] = summarise(runs)
        for name, run in runs.items():  # this variant's evaluations and the seed's, small enough to commit
            folder = {"seed": f"seed-{args.seed_kinds}"}.get(name, name)  # the seed and the probes: runs/seed-<kinds>
            archive_all(args.out / "runs" / (args.variant if run["method"] in METHODS else "") / folder,
                        out / "samples" / folder)
    report["paired"] = paired(report, out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    reading = out / "reading.md"  # the written interpretation, kept apart so that a re-run does not erase it
    (out / "results.md").write_text(markdown(report, reading.read_text() if reading.is_file() else ""))
    plot(report, out / "forgetting.png")
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
