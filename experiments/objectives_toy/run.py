"""CE vs GEM vs EMO vs convex on the toy world: same seed, data, model and steps; then quality and diversity.

    python experiments/objectives_toy/run.py                 # train all four, evaluate, write results/
    python experiments/objectives_toy/run.py --skip-train    # re-evaluate the runs already in runs/
    python experiments/objectives_toy/run.py --smoke         # 4 steps, 2 prompts x 2 samples, under smoke/

Each objective trains through ``train.py`` (its ``*_toy`` experiment, shrunk by ``--steps`` and the model overrides
below, so the four runs differ only in ``module``), and exports a Hugging Face model. Each export is then scored on
held-out toy-world problems (no prompt or answer of them is in the training split):

- ``ce`` / ``ppl``: token-mean CE of the reference responses (prompt masked), the held-out validation set;
- ``acc_greedy``: final-answer accuracy of greedy decoding on ``--prompts`` prompts;
- ``acc_sampled`` / ``pass@k``: accuracy of ``--samples`` samples at T=1 (mean, and any-of-k);
- ``distinct_n``: distinct-1/2/3 of those samples, per prompt then averaged (``src.eval.metrics.distinct``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from experiments.smoke import parse_args  # noqa: E402
from src.eval.engine.generation import generate  # noqa: E402
from src.eval.metrics.distinct import diversity  # noqa: E402
from src.losses.logprobs import token_logps  # noqa: E402
from src.toyworld.tasks import answer_is_correct  # noqa: E402

HERE = Path(__file__).resolve().parent
EXPERIMENTS = {"CE": "quickstart", "GEM": "gem_toy", "EMO": "emo_toy", "convex": "convex_toy"}
# Smaller than quickstart's model so that four runs fit the CPU budget; identical for every objective.
MODEL = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=4"]
# One thread per process: on a shared 2-core machine a 2-thread OpenMP op stalls whenever a core is busy; measured
# here under load, a training step of this model took 0.10 s with 1 thread and 2.4 s with 2.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
COLUMNS = ["ce", "ppl", "acc_greedy", "acc_sampled", "pass@k", "distinct_1", "distinct_2", "distinct_3", "train_s"]


def train(name: str, steps: int, run_dir: Path) -> float:
    """``python train.py experiment=<toy twin>`` for ``steps`` optimizer steps; returns wall seconds."""
    overrides = [
        f"experiment={EXPERIMENTS[name]}", *MODEL, f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
        "callbacks=default", "validate_before_fit=false", "seed=42", f"hydra.run.dir={run_dir}",
    ]
    if name == "convex":  # the warm start keeps convex_toy's fraction of the run (300 of 1000 steps)
        overrides.append(f"module.ce_warmup_steps={int(0.3 * steps)}")
    start = time.time()
    subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, check=True, env={**os.environ, **ONE_THREAD})
    return time.time() - start


@torch.no_grad()
def heldout_ce(model: torch.nn.Module, datamodule) -> float:
    """Token-weighted CE over the whole validation set (response tokens only)."""
    nll, tokens = 0.0, 0
    for batch in datamodule.val_dataloader():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        logps, mask = token_logps(logits, batch["labels"])  # (B, T-1) each
        nll -= float(logps.sum())
        tokens += int(mask.sum())
    return nll / tokens


def evaluate(run_dir: Path, n_prompts: int, n_samples: int) -> dict[str, float]:
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    # The run's own data config (same seed, template and held-out split); limit=1: only the val split is needed.
    datamodule = hydra.utils.instantiate(cfg.data, limit=1)
    datamodule.setup()
    tokenizer = datamodule.tokenizer
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf").eval()
    problems = datamodule.problems("val")[:n_prompts]
    prompts = [datamodule.prompt_text(p.prompt) for p in problems]

    greedy = generate(model, tokenizer, prompts, max_new_tokens=48, batch_size=64)
    sampled = generate(model, tokenizer, [p for p in prompts for _ in range(n_samples)], max_new_tokens=48,
                       batch_size=200, do_sample=True, temperature=1.0, seed=0)
    groups = [sampled[i * n_samples:(i + 1) * n_samples] for i in range(len(problems))]  # [prompt][sample]
    correct = [[answer_is_correct(text, p.answer) for text in group] for group, p in zip(groups, problems)]
    ce = heldout_ce(model, datamodule)
    return {
        "ce": ce,
        "ppl": math.exp(ce),
        "acc_greedy": sum(answer_is_correct(t, p.answer) for t, p in zip(greedy, problems)) / len(problems),
        "acc_sampled": sum(map(sum, correct)) / (len(problems) * n_samples),
        "pass@k": sum(map(any, correct)) / len(problems),
        **diversity(groups),
        "example": groups[0][0],
    }


def markdown(report: dict) -> str:
    settings, results = report["settings"], report["results"]
    lines = [
        f"Toy world, tiny Llama ({', '.join(settings['model'])}), {settings['steps']} steps of batch 32, seed 42, the "
        f"same data order for every objective. Held-out problems only: CE/ppl on the validation responses; accuracy "
        f"and distinct-n on {settings['prompts']} prompts; sampled accuracy, pass@k and distinct-n over "
        f"k={settings['samples']} samples per prompt at T=1. Whole study: {settings['wall_min']:.1f} min wall.",
        "",
        "| objective | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, row in results.items():
        cells = [f"{row[c]:.0f}" if c == "train_s" else f"{row[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"One seed: with {settings['prompts']} prompts an accuracy near 0.5 has a standard error of about "
        f"{math.sqrt(0.25 / settings['prompts']):.2f}. `train_s` is the wall time of `train.py` (start-up, final "
        "validation and export included) on a shared machine, not a speed benchmark. Read diversity beside accuracy: "
        "an untrained model's samples are the most diverse of all.",
        "",
        "A sample (first held-out prompt, first sample at T=1):",
        "",
    ]
    lines += [f"- {name}: `{row['example'].strip()}`" for name, row in results.items()]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    panels = [("held-out CE (lower is better)", ["ce"]), ("accuracy", ["acc_greedy", "acc_sampled", "pass@k"]),
              ("diversity of T=1 samples", ["distinct_1", "distinct_2", "distinct_3"])]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, keys) in zip(axes, panels):
        width = 0.8 / len(keys)
        for j, key in enumerate(keys):
            xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [results[n][key] for n in names], width, label=key)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        if len(keys) > 1:  # both panels are fractions: leave headroom for the legend above the bars
            ax.set_ylim(0, 1.15)
            ax.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_all(args: argparse.Namespace) -> dict[str, dict]:
    results = {}
    for name in args.objectives:
        run_dir = args.out / "runs" / name
        seconds = float("nan") if args.skip_train else train(name, args.steps, run_dir)
        results[name] = {**evaluate(run_dir, args.prompts, args.samples), "train_s": seconds}
        print(name, {k: v for k, v in results[name].items() if k != "example"}, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps, the same for every objective")
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--objectives", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--skip-train", action="store_true", help="evaluate the runs already in runs/")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from metrics.json")
    args = parse_args(parser, HERE, steps=4, prompts=2, samples=2)
    torch.set_num_threads(1)  # see ONE_THREAD
    out = args.out / "results"
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((out / "metrics.json").read_text())
    else:
        start = time.time()
        report = {"results": run_all(args)}
        report["settings"] = {"model": MODEL, "steps": args.steps, "prompts": args.prompts, "samples": args.samples,
                              "wall_min": (time.time() - start) / 60}
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
    (out / "results.md").write_text(markdown(report))
    plot(report["results"], out / "objectives_toy.png")
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
