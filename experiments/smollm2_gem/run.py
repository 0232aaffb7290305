"""GEM vs CE on SmolLM2-135M-Instruct (LoRA r8 q,v) on 2k Alpaca rows, on a shared 1-thread CPU.

    OMP_NUM_THREADS=1 python experiments/smollm2_gem/run.py

Trains CE and GEM (beta 0.7) with the same steps, lr, seed and data order, then evaluates the seed model and both
runs on GSM8K (greedy, and 4 samples for pass@k / maj@k) and poem-prompt diversity (the ``eval=gem`` suite, one task
per phase), and on validation perplexity
(``eval=ppl``, the seed-42 held-out rows). The training runs' own ``val/ppl`` is kept beside it as a cross-check
(step 0 = the seed model: LoRA's B starts at zero).
A phase whose run directory already has ``metrics.json`` is reused. Writes results/metrics.json and diversity.png;
results/results.md is written by hand from them.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUNS, RESULTS = HERE / "runs", HERE / "results"
SEED_MODEL = ROOT / "cache" / "smollm2-135m-instruct-0.1.2"
DATA = "/work/shared/data"
STEPS, LR, VAL_ROWS = 30, 2e-4, 80  # sized to ~7 min per training at ~11 s/step (1 shared thread)
DIV_PROMPTS, DIV_N, DIV_TOKENS = 50, 8, 64
DIVERSITY = ["distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "embedding_diversity"]
GSM_PROMPTS, GSM_TOKENS = 100, 160
VOTE_N, VOTE_T = 4, 0.6  # GSM8K samples per question for maj@k / pass@k (GEM's voting script: T 0.6, top_k 50)

TRAIN = ["train.py", "experiment=sft_smollm2", f"data.path={DATA}/alpaca_2k.json", f"data.val_limit={VAL_ROWS}",
         f"trainer.max_steps={STEPS}"]
# lr after module=: the module option would otherwise bring AdamW's 2e-5 back. GEM skips the step-0 validation,
# which is the same seed model as CE's.
OBJECTIVES = {"ce": ["module=ce", f"module.optimizer.lr={LR}"],
              "gem": ["module=gem", "module.beta=0.7", f"module.optimizer.lr={LR}", "validate_before_fit=false"]}
# One eval.py call per task (the others dropped from the eval=gem suite), so each finished task is kept as a
# phase of its own: a study stopped half-way resumes at the next unfinished task.
TASKS = {
    "gsm8k": [f"eval.tasks.gsm8k.path={DATA}/gsm8k_test.json", f"eval.tasks.gsm8k.limit={GSM_PROMPTS}",
              f"eval.tasks.gsm8k.generation.max_new_tokens={GSM_TOKENS}"],
    "diversity": [f"eval.tasks.diversity.path={DATA}/poem_prompts.parquet", f"eval.tasks.diversity.limit={DIV_PROMPTS}",
                  f"eval.tasks.diversity.generation.n={DIV_N}",
                  f"eval.tasks.diversity.generation.max_new_tokens={DIV_TOKENS}"],
    "gsm8k_voting": [f"eval.tasks.gsm8k_voting.path={DATA}/gsm8k_test.json",
                     f"eval.tasks.gsm8k_voting.limit={GSM_PROMPTS}", f"eval.tasks.gsm8k_voting.generation.n={VOTE_N}",
                     f"eval.tasks.gsm8k_voting.generation.temperature={VOTE_T}",
                     f"eval.tasks.gsm8k_voting.generation.max_new_tokens={GSM_TOKENS}"],
}


def eval_args(task: str) -> list[str]:
    return ["eval.py", "eval=gem", "cpu_threads=1", *(f"eval.tasks.{t}=null" for t in TASKS if t != task),
            *TASKS[task]]


# The held-out rows of the training runs (evaluate.yaml's seed 42 = train.yaml's), first VAL_ROWS of them.
PPL = ["eval.py", "eval=ppl", "data@eval.data=alpaca", f"eval.data.path={DATA}/alpaca_2k.json", "cpu_threads=1",
       "eval.data.template=chat", "eval.data.max_length=256", f"eval.data.val_limit={VAL_ROWS}"]


def phase(name: str, args: list[str]) -> float:
    """Run one train/evaluate call into runs/<name> unless it finished before; its wall seconds (as first run)."""
    out, seconds = RUNS / name, RUNS / f"{name}.seconds"
    if (out / "metrics.json").exists():
        return float(seconds.read_text()) if seconds.exists() else float("nan")
    start = time.time()
    cmd = [sys.executable, *args, f"hydra.run.dir={out}"]
    print(" ".join(cmd[1:]), flush=True)
    with open(RUNS / f"{name}.log", "w") as log:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds.write_text(f"{time.time() - start:.0f}")
    return time.time() - start


def read(run: str) -> dict[str, float]:
    return json.loads((RUNS / run / "metrics.json").read_text())


def val_ppl(run: str) -> tuple[float, float]:
    """(first, last) val/ppl of a training run: step 0 is the seed model."""
    with open(RUNS / run / "csv" / "metrics.csv") as f:
        ppl = [float(r["val/ppl"]) for r in csv.DictReader(f) if r["val/ppl"]]
    return ppl[0], ppl[-1]


def main() -> None:
    RUNS.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    timing = {f"train_{k}": phase(k, [*TRAIN, *v]) for k, v in OBJECTIVES.items()}
    models = {"seed": str(SEED_MODEL), "ce": str(RUNS / "ce"), "gem": str(RUNS / "gem")}
    for task in TASKS:  # every model on one task before the next: a partial study still compares models
        timing |= {f"eval_{task}_{k}": phase(f"eval_{task}_{k}", [*eval_args(task), f"model_path={v}"])
                   for k, v in models.items()}
    timing |= {f"ppl_{k}": phase(f"ppl_{k}", [*PPL, f"model_path={v}"]) for k, v in models.items()}
    train_ppl = {"seed": val_ppl("ce")[0], "ce": val_ppl("ce")[1], "gem": val_ppl("gem")[1]}
    metrics = {m: {"val_ppl": read(f"ppl_{m}")["ppl/ppl"], "train_val_ppl": train_ppl[m],
                   **{k: v for t in TASKS for k, v in read(f"eval_{t}_{m}").items()}} for m in models}
    (RESULTS / "metrics.json").write_text(json.dumps({"metrics": metrics, "seconds": timing}, indent=2))
    plot(metrics)
    print(table(metrics))


def table(metrics: dict[str, dict]) -> str:
    """The results.md table: one row per model."""
    cols = ["val_ppl", *(f"diversity/{k}" for k in DIVERSITY), "gsm8k/accuracy",
            *(f"gsm8k_voting/{k}@{VOTE_N}" for k in ("pass", "maj")), "gsm8k_voting/pass@1"]
    lines = ["| model | " + " | ".join(c.split("/")[-1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for model, m in metrics.items():
        lines.append(f"| {model} | " + " | ".join(f"{m.get(c, float('nan')):.4f}" for c in cols) + " |")
    return "\n".join(lines)


def plot(metrics: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(metrics)
    for i, (model, m) in enumerate(metrics.items()):
        # self-BLEU is 0-100 (lower = more diverse): /100 to share the 0-1 axis
        values = [m[f"diversity/{k}"] / (100 if k == "self_bleu" else 1) for k in DIVERSITY]
        ax.bar([x + i * width for x in range(len(DIVERSITY))], values, width, label=model)
    ax.set_xticks([x + width for x in range(len(DIVERSITY))], [k.replace("self_bleu", "self_bleu/100\n(lower=diverse)")
                                                                for k in DIVERSITY])
    ax.set_title(f"Poem-prompt diversity, SmolLM2-135M ({DIV_PROMPTS} prompts x {DIV_N} samples)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "diversity.png", dpi=120)


if __name__ == "__main__":
    main()
