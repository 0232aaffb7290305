"""GEM vs CE on SmolLM2-135M-Instruct (LoRA r8 q,v) on 2k Alpaca rows, on a shared 1-thread CPU.

    OMP_NUM_THREADS=1 python experiments/smollm2_gem/run.py
    python experiments/smollm2_gem/run.py --smoke     # tiny stand-ins, 2 steps, 2 prompts, under smoke/ (CI)

Trains CE and GEM (beta 0.7) with the same steps, lr, seed and data order, then evaluates the seed model and both
runs on GSM8K (greedy, and 4 samples for pass@k / maj@k) and poem-prompt diversity (the ``eval=gem`` suite, one task
per phase), and on validation perplexity
(``eval=ppl``, the seed-42 held-out rows). The training runs' own ``val/ppl`` is kept beside it as a cross-check
(step 0 = the seed model: LoRA's B starts at zero).
A phase whose run directory already has ``metrics.json`` is reused. Writes results/metrics.json and diversity.png;
results/results.md is written by hand from them. ``--smoke`` runs the same phases on a tiny random Llama and stand-in
data (``experiments/smoke.py``) at SMOKE's sizes, writing runs/ and results/ under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import Study, parse_args  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402


class Sizes(NamedTuple):
    steps: int
    val_rows: int
    div_prompts: int
    div_n: int
    div_tokens: int
    gsm_prompts: int
    gsm_tokens: int
    vote_n: int  # GSM8K samples per question for maj@k / pass@k


# steps sized to ~7 min per training at ~11 s/step (1 shared thread)
FULL = Sizes(steps=30, val_rows=80, div_prompts=50, div_n=8, div_tokens=64, gsm_prompts=100, gsm_tokens=160, vote_n=4)
SMOKE = Sizes(steps=2, val_rows=4, div_prompts=2, div_n=2, div_tokens=8, gsm_prompts=2, gsm_tokens=8, vote_n=2)
LR, VOTE_T = 2e-4, 0.6  # VOTE_T: GEM's voting script (T 0.6, top_k 50)
DIVERSITY = ["distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "embedding_diversity"]

# lr after module=: the module option would otherwise bring AdamW's 2e-5 back. GEM skips the step-0 validation,
# which is the same seed model as CE's.
OBJECTIVES = {"ce": ["module=ce", f"module.optimizer.lr={LR}"],
              "gem": ["module=gem", "module.beta=0.7", f"module.optimizer.lr={LR}", "validate_before_fit=false"]}


def train_args(study: Study) -> list[str]:
    s = study.sizes
    return ["train.py", "experiment=sft_smollm2", f"data.path={study.inputs.data}/alpaca_2k.json",
            f"data.val_limit={s.val_rows}", f"trainer.max_steps={s.steps}", *study.inputs.model]


def tasks(study: Study) -> dict[str, list[str]]:
    """One eval.py call per task (the others dropped from the eval=gem suite), so each finished task is kept as a
    phase of its own: a study stopped half-way resumes at the next unfinished task."""
    s, data = study.sizes, study.inputs.data
    return {
        "gsm8k": [f"eval.tasks.gsm8k.path={data}/gsm8k_test.json", f"eval.tasks.gsm8k.limit={s.gsm_prompts}",
                  f"eval.tasks.gsm8k.generation.max_new_tokens={s.gsm_tokens}"],
        "diversity": [f"eval.tasks.diversity.path={data}/poem_prompts.parquet",
                      f"eval.tasks.diversity.limit={s.div_prompts}", f"eval.tasks.diversity.generation.n={s.div_n}",
                      f"eval.tasks.diversity.generation.max_new_tokens={s.div_tokens}"],
        "gsm8k_voting": [f"eval.tasks.gsm8k_voting.path={data}/gsm8k_test.json",
                         f"eval.tasks.gsm8k_voting.limit={s.gsm_prompts}",
                         f"eval.tasks.gsm8k_voting.generation.n={s.vote_n}",
                         f"eval.tasks.gsm8k_voting.generation.temperature={VOTE_T}",
                         f"eval.tasks.gsm8k_voting.generation.max_new_tokens={s.gsm_tokens}"],
    }


def eval_args(task: str, every: dict[str, list[str]]) -> list[str]:
    return ["eval.py", "eval=gem", "cpu_threads=1", *(f"eval.tasks.{t}=null" for t in every if t != task),
            *every[task]]


def ppl_args(study: Study) -> list[str]:
    """The held-out rows of the training runs (evaluate.yaml's seed 42 = train.yaml's), first val_rows of them."""
    return ["eval.py", "eval=ppl", "data@eval.data=alpaca", f"eval.data.path={study.inputs.data}/alpaca_2k.json",
            "cpu_threads=1", "eval.data.template=chat", "eval.data.max_length=256",
            f"eval.data.val_limit={study.sizes.val_rows}"]


def phase(runs: Path, name: str, args: list[str]) -> float:
    """Run one train/evaluate call into runs/<name> unless it finished before; its wall seconds (as first run)."""
    out, seconds = runs / name, runs / f"{name}.seconds"
    if (out / "metrics.json").exists():
        return float(seconds.read_text()) if seconds.exists() else float("nan")
    start = time.time()
    cmd = [sys.executable, *args, f"hydra.run.dir={out}"]
    print(" ".join(cmd[1:]), flush=True)
    with open(runs / f"{name}.log", "w") as log:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds.write_text(f"{time.time() - start:.0f}")
    return time.time() - start


def read(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def val_ppl(run_dir: Path) -> tuple[float, float]:
    """(first, last) val/ppl of a training run: step 0 is the seed model."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        ppl = [float(r["val/ppl"]) for r in csv.DictReader(f) if r["val/ppl"]]
    return ppl[0], ppl[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study = Study.from_args(parse_args(parser, HERE), FULL, SMOKE)
    runs, every = study.runs, tasks(study)
    timing = {f"train_{k}": phase(runs, k, [*train_args(study), *v]) for k, v in OBJECTIVES.items()}
    models = {"seed": str(study.inputs.seed_model), "ce": str(runs / "ce"), "gem": str(runs / "gem")}
    for task in every:  # every model on one task before the next: a partial study still compares models
        timing |= {f"eval_{task}_{k}": phase(runs, f"eval_{task}_{k}", [*eval_args(task, every), f"model_path={v}"])
                   for k, v in models.items()}
    timing |= {f"ppl_{k}": phase(runs, f"ppl_{k}", [*ppl_args(study), f"model_path={v}"]) for k, v in models.items()}
    train_ppl = {"seed": val_ppl(runs / "ce")[0], "ce": val_ppl(runs / "ce")[1], "gem": val_ppl(runs / "gem")[1]}
    metrics = {m: {"val_ppl": read(runs / f"ppl_{m}")["ppl/ppl"], "train_val_ppl": train_ppl[m],
                   **{k: v for t in every for k, v in read(runs / f"eval_{t}_{m}").items()}} for m in models}
    (study.results / "metrics.json").write_text(json.dumps({"metrics": metrics, "seconds": timing,
                                                            "sizes": study.sizes._asdict()}, indent=2))
    archive_all(runs, study.results / "samples")  # every evaluation's samples, small enough to commit
    plot(metrics, study.sizes, study.results / "diversity.png")
    print(table(metrics, study.sizes))


def table(metrics: dict[str, dict], sizes: Sizes) -> str:
    """The results.md table: one row per model."""
    cols = ["val_ppl", *(f"diversity/{k}" for k in DIVERSITY), "gsm8k/accuracy",
            *(f"gsm8k_voting/{k}@{sizes.vote_n}" for k in ("pass", "maj")), "gsm8k_voting/pass@1"]
    lines = ["| model | " + " | ".join(c.split("/")[-1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for model, m in metrics.items():
        lines.append(f"| {model} | " + " | ".join(f"{m.get(c, float('nan')):.4f}" for c in cols) + " |")
    return "\n".join(lines)


def plot(metrics: dict[str, dict], sizes: Sizes, path: Path) -> None:
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
    ax.set_title(f"Poem-prompt diversity, SmolLM2-135M ({sizes.div_prompts} prompts x {sizes.div_n} samples)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
