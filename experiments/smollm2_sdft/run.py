"""SDFT vs SFT on SmolLM2-135M-Instruct (Yang et al. 2024, scaled down to a shared 2-core CPU), GSM8K as the new task.

    python experiments/smollm2_sdft/run.py                # data files, both runs, 9 evaluations, results/
    python experiments/smollm2_sdft/run.py --report-only  # rewrite results.md and forgetting.png from metrics.json
    python experiments/smollm2_sdft/run.py --smoke        # tiny stand-ins, 12 rows, 2 steps, under smoke/ (CI)

Re-runnable: a run whose ``hf/`` export exists is not trained again, an evaluation whose ``metrics.json`` exists is
not run again. Everything goes through the project's entry points, one process at a time, one thread each:

1. ``train.py experiment=sft_smollm2`` on GSM8K test rows 0..train_rows-1 (question/answer), and the same plus
   ``distill=gsm8k`` (the seed model rewrites each answer from the gsm8k distillation template; a rewrite whose last
   number is not the gold's keeps the original), with the same seed, steps, lr, schedule, split and data order.
2. ``eval.py`` on the seed model and both runs: GSM8K greedy accuracy on rows 1000.. (disjoint from training),
   perplexity of 100 held-out Alpaca responses, and the 29-keyword safe rate on ``advbench_style.csv`` (40 harmful
   requests written for this study in AdvBench's style).
Sizes (FULL: train_rows, steps, eval_rows) were cut to fit a 45-minute budget after timing 8 distilled rows: see
results.md. ``--smoke`` runs the same phases on a tiny random Llama and stand-in data (``experiments/smoke.py``) at
SMOKE's sizes, writing the data files, runs/ and results/ under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import Study, parse_args  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402


class Sizes(NamedTuple):
    train_rows: int  # GSM8K test rows 0.. to train on (8 of them validate)
    eval_start: int  # the held-out GSM8K rows
    eval_rows: int
    steps: int
    max_new_tokens: int  # of the distillation and the GSM8K evaluation
    ppl_rows: int  # held-out Alpaca responses
    eval_limit: int | None  # eval.py's limit= on every evaluation (null: every row)


FULL = Sizes(train_rows=96, eval_start=1000, eval_rows=20, steps=40, max_new_tokens=192, ppl_rows=100,
             eval_limit=None)
SMOKE = Sizes(train_rows=12, eval_start=12, eval_rows=2, steps=2, max_new_tokens=8, ppl_rows=4, eval_limit=2)
LR, SEED = 2e-4, 42
HARMFUL = HERE / "advbench_style.csv"
METRIC = {"gsm8k": "gsm8k/accuracy", "ppl": "ppl/ppl", "advbench": "advbench/safe_rate"}


def data_files(study: Study) -> tuple[Path, Path]:
    """The training and held-out GSM8K files (beside run.py, committed, for the full study)."""
    s = study.sizes
    return (study.out / f"gsm8k_train_0_{s.train_rows - 1}.json",
            study.out / f"gsm8k_heldout_{s.eval_start}_{s.eval_start + s.eval_rows - 1}.json")


def train_overrides(study: Study) -> list[str]:
    s = study.sizes
    return ["experiment=sft_smollm2", f"data.path={data_files(study)[0]}", "data.instruction_field=question",
            "data.response_field=answer", "data.max_length=384", "data.val_size=8", f"module.optimizer.lr={LR}",
            # each epoch (Lightning refuses an interval longer than one, 22 batches); a float interval needs an
            # epoch count
            "trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=1",
            f"trainer.max_steps={s.steps}", "trainer.max_epochs=10",
            f"seed={SEED}", "cpu_threads=1", *study.inputs.model]


def sdft_overrides(study: Study) -> list[str]:
    """sdft_gsm8k's wiring on the command line: the distill stage reads distill.path, training reads its output."""
    return ["distill=gsm8k", f"distill.path={data_files(study)[0]}", "data.path=${distill.path}",
            f"distill.generation.max_new_tokens={study.sizes.max_new_tokens}", "distill.generation.batch_size=32",
            f"distill.cache_dir={study.runs}/cache"]


def eval_overrides(study: Study) -> dict[str, list[str]]:
    s, alpaca = study.sizes, study.inputs.data / "alpaca_2k.json"
    limit = [f"limit={s.eval_limit}"] if s.eval_limit else []
    return {
        "gsm8k": ["eval=gsm8k", f"eval.path={data_files(study)[1]}",
                  f"eval.generation.max_new_tokens={s.max_new_tokens}", *limit],
        "ppl": ["eval=ppl", "data@eval.data=alpaca", f"eval.data.path={alpaca}", "eval.data.template=chat",
                f"eval.data.val_size={s.ppl_rows}", *limit],
        "advbench": ["eval=advbench", f"eval.path={HARMFUL}", "eval.template=chat", "eval.generation.max_new_tokens=64",
                     *limit],
    }


def call(script: str, overrides: list[str], log: Path) -> float:
    return run_logged(script, overrides, log, ROOT)


def write_data(study: Study) -> None:
    rows, s = json.loads((study.inputs.data / "gsm8k_test.json").read_text()), study.sizes
    parts = rows[:s.train_rows], rows[s.eval_start:s.eval_start + s.eval_rows]
    for path, part in zip(data_files(study), parts):
        if not path.is_file():
            path.write_text(json.dumps(part, indent=1) + "\n")


def train(name: str, overrides: list[str], runs: Path) -> tuple[Path, float | None]:
    run_dir = runs / name
    wall = run_dir / "wall.json"
    if not (run_dir / "hf" / "config.json").is_file():
        seconds = call("train.py", [*overrides, f"hydra.run.dir={run_dir}"], runs / "logs" / f"{name}.log")
        wall.write_text(json.dumps({"train_s": seconds}))
    return run_dir, json.loads(wall.read_text())["train_s"] if wall.is_file() else None


def evaluate(name: str, model_path: Path, study: Study) -> dict:
    out = {"eval_s": {}}
    for task, overrides in eval_overrides(study).items():
        eval_dir = study.runs / "eval" / name / task
        if not (eval_dir / "metrics.json").is_file():
            out["eval_s"][task] = call("eval.py", [*overrides, f"model_path={model_path}",
                                                       f"hydra.run.dir={eval_dir}", "cpu_threads=1", "progress=false"],
                                       eval_dir / "evaluate.log")
        out[task] = json.loads((eval_dir / "metrics.json").read_text())[METRIC[task]]
    return out


def run_study(study: Study) -> dict:
    write_data(study)
    runs = {"seed": {"path": str(study.inputs.seed_model)}}
    extras = {"SDFT": sdft_overrides(study), "SFT": []}  # SDFT first: its distillation is the slowest, least sure part
    for name, extra in extras.items():
        run_dir, seconds = train(name.lower(), [*train_overrides(study), *extra], study.runs)
        runs[name] = {"path": str(run_dir), "train_s": seconds}
        summary = run_dir / "distill" / "summary.json"
        if summary.is_file():
            runs[name]["replaced_fraction"] = json.loads(summary.read_text())["replaced_fraction"]
    for name, info in runs.items():
        info.update(evaluate(name.lower(), Path(info["path"]), study))
        print(name, info, flush=True)
    for info in runs.values():
        for task in METRIC:
            info[f"{task}_drop"] = runs["seed"][task] - info[task]  # positive: worse than seed (ppl: negative)
    s = study.sizes
    return {"config": {"train_rows": s.train_rows, "eval_rows": s.eval_rows, "steps": s.steps, "lr": LR, "seed": SEED,
                       "train": train_overrides(study), "sdft": extras["SDFT"], "evals": eval_overrides(study)},
            "runs": runs}


def plot(metrics: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = metrics["runs"]
    names = list(runs)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (task, label) in zip(axes, (("gsm8k", "GSM8K accuracy (new task)"), ("ppl", "Alpaca ppl (lower better)"),
                                        ("advbench", "safe rate (29 keywords)"))):
        values = [runs[n][task] for n in names]
        ax.bar(names, values, color=["grey", "tab:blue", "tab:orange"][:len(names)])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=9)
        ax.set_title(label, fontsize=10)
    cfg = metrics["config"]
    fig.suptitle(f"SmolLM2-135M-Instruct, LoRA r8 q,v: {cfg['train_rows']} GSM8K rows, {cfg['steps']} steps, "
                 f"lr {cfg['lr']}, seed {cfg['seed']} (one seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(metrics: dict) -> str:
    """The results table (markdown): each metric and its drop from the seed model."""
    lines = ["| model | GSM8K acc | drop | Alpaca ppl | rise | safe rate | drop | SDFT replaced | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in metrics["runs"].items():
        replaced = f"{r['replaced_fraction']:.3f}" if r.get("replaced_fraction") is not None else "-"
        train_s = f"{r['train_s']:.0f}" if r.get("train_s") else "-"
        lines.append(f"| {name} | {r['gsm8k']:.3f} | {r['gsm8k_drop']:+.3f} | {r['ppl']:.3f} | {-r['ppl_drop']:+.3f} "
                     f"| {r['advbench']:.3f} | {r['advbench_drop']:+.3f} | {replaced} | {train_s} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true")
    args = parse_args(parser, HERE)
    study = Study.from_args(args, FULL, SMOKE)
    metrics_file = study.results / "metrics.json"
    if not args.report_only:
        start = time.time()
        metrics = run_study(study)
        metrics["study_wall_s"] = time.time() - start
        metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
        archive_all(study.runs, study.results / "samples")  # every evaluation's samples, small enough to commit
    metrics = json.loads(metrics_file.read_text())
    plot(metrics, study.results / "forgetting.png")
    print(table(metrics))


if __name__ == "__main__":
    main()
