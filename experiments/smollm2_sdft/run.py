"""SDFT vs SFT on SmolLM2-135M-Instruct (Yang et al. 2024, scaled down to a shared 2-core CPU), GSM8K as the new task.

    python experiments/smollm2_sdft/run.py                # data files, both runs, 9 evaluations, results/
    python experiments/smollm2_sdft/run.py --report-only  # rewrite results.md and forgetting.png from metrics.json

Re-runnable: a run whose ``hf/`` export exists is not trained again, an evaluation whose ``metrics.json`` exists is
not run again. Everything goes through the project's entry points, one process at a time, one thread each:

1. ``train.py experiment=sft_smollm2`` on GSM8K test rows 0..TRAIN_ROWS-1 (question/answer), and the same plus
   ``distill=gsm8k`` (the seed model rewrites each answer from the gsm8k distillation template; a rewrite whose last
   number is not the gold's keeps the original), with the same seed, steps, lr, schedule, split and data order.
2. ``eval.py`` on the seed model and both runs: GSM8K greedy accuracy on rows 1000.. (disjoint from training),
   perplexity of 100 held-out Alpaca responses, and the 29-keyword safe rate on ``advbench_style.csv`` (40 harmful
   requests written for this study in AdvBench's style).
Sizes (TRAIN_ROWS, STEPS, EVAL_ROWS) were cut to fit a 45-minute budget after timing 8 distilled rows: see results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from src.utils.machine import run_logged

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS = HERE / "runs"
RESULTS = HERE / "results"
GSM8K = Path("/work/shared/data/gsm8k_test.json")
ALPACA = "/work/shared/data/alpaca_2k.json"
SEED_MODEL = ROOT / "cache" / "smollm2-135m-instruct-0.1.2"  # model=smollm2_135m's converted directory
TRAIN_ROWS, EVAL_START, EVAL_ROWS = 96, 1000, 20
STEPS, LR, SEED = 40, 2e-4, 42
TRAIN_FILE = HERE / f"gsm8k_train_0_{TRAIN_ROWS - 1}.json"
EVAL_FILE = HERE / f"gsm8k_heldout_{EVAL_START}_{EVAL_START + EVAL_ROWS - 1}.json"
HARMFUL = HERE / "advbench_style.csv"

TRAIN = ["experiment=sft_smollm2", f"data.path={TRAIN_FILE}", "data.instruction_field=question",
         "data.response_field=answer", "data.max_length=384", "data.val_size=8", f"module.optimizer.lr={LR}",
         # each epoch (Lightning refuses an interval longer than one, 22 batches); a float interval needs an epoch count
         "trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=1",
         f"trainer.max_steps={STEPS}", "trainer.max_epochs=10",
         f"seed={SEED}", "cpu_threads=1"]
# sdft_gsm8k's wiring on the command line: the distill stage reads distill.path, training reads its output.
SDFT = ["distill=gsm8k", f"distill.path={TRAIN_FILE}", "data.path=${distill.path}",
        "distill.generation.max_new_tokens=192", "distill.generation.batch_size=32", f"distill.cache_dir={RUNS}/cache"]
EVALS = {
    "gsm8k": ["eval=gsm8k", f"eval.path={EVAL_FILE}", "eval.generation.max_new_tokens=192"],
    "ppl": ["eval=ppl", "data@eval.data=alpaca", f"eval.data.path={ALPACA}", "eval.data.template=chat",
            "eval.data.val_size=100"],
    "advbench": ["eval=advbench", f"eval.path={HARMFUL}", "eval.template=chat", "eval.generation.max_new_tokens=64"],
}
METRIC = {"gsm8k": "gsm8k/accuracy", "ppl": "ppl/ppl", "advbench": "advbench/safe_rate"}


def call(script: str, overrides: list[str], log: Path) -> float:
    return run_logged(script, overrides, log, ROOT)


def write_data() -> None:
    rows = json.loads(GSM8K.read_text())
    for path, part in ((TRAIN_FILE, rows[:TRAIN_ROWS]), (EVAL_FILE, rows[EVAL_START:EVAL_START + EVAL_ROWS])):
        if not path.is_file():
            path.write_text(json.dumps(part, indent=1) + "\n")


def train(name: str, overrides: list[str]) -> tuple[Path, float | None]:
    run_dir = RUNS / name
    wall = run_dir / "wall.json"
    if not (run_dir / "hf" / "config.json").is_file():
        seconds = call("train.py", [*overrides, f"hydra.run.dir={run_dir}"], RUNS / "logs" / f"{name}.log")
        wall.write_text(json.dumps({"train_s": seconds}))
    return run_dir, json.loads(wall.read_text())["train_s"] if wall.is_file() else None


def evaluate(name: str, model_path: Path) -> dict:
    out = {"eval_s": {}}
    for task, overrides in EVALS.items():
        eval_dir = RUNS / "eval" / name / task
        if not (eval_dir / "metrics.json").is_file():
            out["eval_s"][task] = call("eval.py", [*overrides, f"model_path={model_path}",
                                                       f"hydra.run.dir={eval_dir}", "cpu_threads=1", "progress=false"],
                                       eval_dir / "evaluate.log")
        out[task] = json.loads((eval_dir / "metrics.json").read_text())[METRIC[task]]
    return out


def run_study() -> dict:
    write_data()
    runs = {"seed": {"path": str(SEED_MODEL)}}
    for name, extra in (("SDFT", SDFT), ("SFT", [])):  # SDFT first: its distillation is the slowest, least sure part
        run_dir, seconds = train(name.lower(), [*TRAIN, *extra])
        runs[name] = {"path": str(run_dir), "train_s": seconds}
        summary = run_dir / "distill" / "summary.json"
        if summary.is_file():
            runs[name]["replaced_fraction"] = json.loads(summary.read_text())["replaced_fraction"]
    for name, info in runs.items():
        info.update(evaluate(name.lower(), Path(info["path"])))
        print(name, info, flush=True)
    for info in runs.values():
        for task in EVALS:
            info[f"{task}_drop"] = runs["seed"][task] - info[task]  # positive: worse than seed (ppl: negative)
    return {"config": {"train_rows": TRAIN_ROWS, "eval_rows": EVAL_ROWS, "steps": STEPS, "lr": LR, "seed": SEED,
                       "train": TRAIN, "sdft": SDFT, "evals": EVALS}, "runs": runs}


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
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    metrics_file = RESULTS / "metrics.json"
    if not args.report_only:
        start = time.time()
        metrics = run_study()
        metrics["study_wall_s"] = time.time() - start
        metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
    metrics = json.loads(metrics_file.read_text())
    plot(metrics, RESULTS / "forgetting.png")
    print(table(metrics))


if __name__ == "__main__":
    main()
