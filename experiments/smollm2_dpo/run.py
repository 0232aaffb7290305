"""DPO, SFT -> DPO (sequential) and ALRIGHT on SmolLM2-135M-Instruct with preference pairs built from Alpaca rows.

    OMP_NUM_THREADS=1 python experiments/smollm2_dpo/run.py                # pairs, 5 runs, results/
    OMP_NUM_THREADS=1 python experiments/smollm2_dpo/run.py --report-only  # plot and table from metrics.json
    python experiments/smollm2_dpo/run.py --smoke     # tiny stand-ins, 24 rows, 4 steps, under smoke/ (CI)

Rows of ``/work/shared/data/alpaca_2k.json`` by index, all disjoint: pairs for training [0, 80), held-out pairs
[80, 128), held-out SFT rows [128, 176), SFT training rows [176, 2000). A pair's prompt is the row's user turn
(instruction, then a blank line and the input if there is one: AlpacaDataModule's chat rendering); chosen = the
Alpaca output, rejected = the seed model's own greedy response (``src.eval.engine.hf_engine.generate_samples``, at most
``max_new_tokens``, chat template). A pair whose two responses are equal after stripping is dropped and counted.
The pairs go to ``pairs/{train,test}.jsonl`` (kept: the seed's generations are the slow part) and are reused.

Every method is one ``train.py experiment=alright_smollm2|sequential_smollm2`` run (LoRA r 8 on q,v, lr, seed, steps,
data order per stream identical), reference = the seed model precomputed once (shared on disk between runs):
SFT only and DPO only are ALRIGHT with lam 0 and 1 (as experiments/interleave_toy does), sequential and ALRIGHT
use lam 0.5 (ALRIGHT twice: its seeded coin, and ``interleave.mode=bresenham`` for exactly sequential's split).
Each run validates once at its end on both held-out sets: ``val/ce`` (the SFT loss) and DPO's ``val/rewards/*``;
the first run also validates before training, which is the seed model's row. A run whose directory has
``metrics.json`` is reused; wall seconds per phase are recorded. ``--smoke`` runs the same phases on a tiny random
Llama and 24 stand-in rows (``experiments/smoke.py``), at SMOKE's sizes, writing pairs/, runs/ and results/ under
``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import Study, parse_args  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402


class Sizes(NamedTuple):
    splits: dict[str, tuple[int, int]]  # rows of alpaca_2k.json by index, all disjoint
    max_new_tokens: int  # of the seed's rejected responses
    steps: int


FULL = Sizes({"pairs_train": (0, 80), "pairs_test": (80, 128), "sft_test": (128, 176), "sft_train": (176, 2000)},
             max_new_tokens=128, steps=40)
SMOKE = Sizes({"pairs_train": (0, 4), "pairs_test": (4, 8), "sft_test": (8, 12), "sft_train": (12, 24)},
              max_new_tokens=8, steps=4)
LR, SEED = 2e-4, 42


def pairs_dir(study: Study) -> Path:
    return study.out / "pairs"


def sft_dir(study: Study) -> Path:
    return study.runs / "sft_data"


def common(study: Study) -> list[str]:
    """Every run's overrides besides its method's."""
    steps = study.sizes.steps
    return [f"data.sft.path={sft_dir(study)}", "data.sft.val_split=test", f"data.prefs.path={pairs_dir(study)}",
            "data.prefs.train_split=train", "data.prefs.val_split=test", f"module.optimizer.lr={LR}",
            f"module.reference_cache_dir={study.runs / 'reference'}", f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps}", f"seed={SEED}", "cpu_threads=1", *study.inputs.model,
            # no exports or checkpoints: the runs are measured by their own final validation
            "callbacks.hf_export=null", "callbacks.model_checkpoint=null", "++callbacks.last_checkpoint=null",
            "callbacks.progress_bar=null", "++trainer.enable_checkpointing=false"]


# Sequential first: its validation before training is the seed's row, and it and ALRIGHT are the comparison.
METHODS = {
    "sequential": ["experiment=sequential_smollm2", "interleave.lam=0.5", "validate_before_fit=true"],
    "alright": ["experiment=alright_smollm2", "interleave.lam=0.5", "validate_before_fit=false"],
    "dpo": ["experiment=alright_smollm2", "interleave.lam=1.0", "validate_before_fit=false"],
    "sft": ["experiment=alright_smollm2", "interleave.lam=0.0", "validate_before_fit=false"],
    # ALRIGHT's seeded coin gave 23 SFT / 17 DPO steps in 40; Bresenham hits sequential's 20 / 20 exactly
    "alright_bresenham": ["experiment=alright_smollm2", "interleave.lam=0.5", "interleave.mode=bresenham",
                          "validate_before_fit=false"],
}
VAL = ["val/ce", "val/ppl", "val/rewards/accuracies", "val/rewards/margins", "val/dpo_loss", "val/logps/chosen",
       "val/logps/rejected"]


def user_turn(row: dict) -> str:
    """AlpacaDataModule's chat user turn (``template=chat``), so both streams render a row's prompt alike."""
    context = row.get("input") or ""
    return f"{row['instruction']}\n\n{context}" if context.strip() else row["instruction"]


def write_sft_data(rows: list[dict], study: Study) -> None:
    sft_dir(study).mkdir(parents=True, exist_ok=True)
    for split, key in (("train", "sft_train"), ("test", "sft_test")):
        lo, hi = study.sizes.splits[key]
        (sft_dir(study) / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[lo:hi]))


def make_pairs(rows: list[dict], study: Study) -> dict:
    """Greedy responses of the seed model to the pair rows' prompts -> pairs/{train,test}.jsonl; a summary."""
    pairs_folder = pairs_dir(study)
    summary_file = pairs_folder / "summary.json"
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    import torch

    from src.eval.engine.hf_engine import Sampling, generate_samples
    from src.eval.engine.models import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model(str(study.inputs.seed_model), dtype="float32", device="cpu")
    start, max_new_tokens = time.time(), study.sizes.max_new_tokens
    summary: dict = {"rule": "chosen = Alpaca output, rejected = seed model's greedy response",
                     "max_new_tokens": max_new_tokens}
    pairs_folder.mkdir(parents=True, exist_ok=True)
    for split, key in (("train", "pairs_train"), ("test", "pairs_test")):
        lo, hi = study.sizes.splits[key]
        prompts = [(i, tokenizer.apply_chat_template([{"role": "user", "content": user_turn(rows[i])}],
                                                     tokenize=False, add_generation_prompt=True))
                   for i in range(lo, hi)]
        samples = generate_samples(model, tokenizer, prompts, Sampling(max_new_tokens=max_new_tokens))
        pairs, identical, truncated = [], 0, 0
        for i in range(lo, hi):
            sample, prompt = samples[i][0], [{"role": "user", "content": user_turn(rows[i])}]
            if sample.text.strip() == rows[i]["output"].strip():
                identical += 1
                continue
            truncated += bool(sample.truncated)
            pairs.append({"row": i, "chosen": prompt + [{"role": "assistant", "content": rows[i]["output"]}],
                          "rejected": prompt + [{"role": "assistant", "content": sample.text}],
                          "rejected_truncated": bool(sample.truncated)})
        (pairs_folder / f"{split}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
        summary[split] = {"rows": [lo, hi], "pairs": len(pairs), "dropped_identical": identical,
                          "rejected_truncated": truncated}
    summary["generation_s"] = time.time() - start
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def train(name: str, overrides: list[str], study: Study) -> float | None:
    """One training run into runs/<name> unless it finished before; its wall seconds (as first run)."""
    run_dir, wall = study.runs / name, study.runs / f"{name}.seconds"
    if not (run_dir / "metrics.json").is_file():
        seconds = run_logged("train.py", [*overrides, *common(study), f"hydra.run.dir={run_dir}"],
                             study.runs / f"{name}.log", ROOT)
        wall.write_text(f"{seconds:.0f}\n")
    return float(wall.read_text()) if wall.is_file() else None


def validations(run_dir: Path) -> list[dict[str, float]]:
    """The run's validation rows (metrics.csv), in step order: ``step`` and VAL."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [{"step": int(r["step"]), **{k: float(r[k]) for k in VAL}} for r in csv.DictReader(f) if r["val/ce"]]


def run_study(study: Study) -> dict:
    rows = json.loads((study.inputs.data / "alpaca_2k.json").read_text())
    write_sft_data(rows, study)
    pairs = make_pairs(rows, study)
    runs: dict[str, dict] = {}
    for name, overrides in METHODS.items():
        seconds = train(name, overrides, study)
        final = json.loads((study.runs / name / "metrics.json").read_text())
        runs[name] = {**validations(study.runs / name)[-1], "wall_s": seconds,
                      "train_s": final.get("cost/train_seconds"),
                      "sft_steps": final.get("schedule/sft_steps", 0.0),
                      "dpo_steps": final.get("schedule/dpo_steps", 0.0)}
        print(name, runs[name], flush=True)
    seed = validations(study.runs / "sequential")[0]
    assert seed["step"] == 0, "the sequential run validates before training: its first row is the seed model"
    runs["seed"] = {**seed, "wall_s": None, "train_s": None, "sft_steps": 0, "dpo_steps": 0}
    order = ["seed", "sft", "dpo", "sequential", "alright", "alright_bresenham"]  # the table's rows
    # the phases' own wall times as first run (a rerun reuses them): generation + every training run
    total = pairs["generation_s"] + sum(r["wall_s"] or 0.0 for r in runs.values())
    return {"config": {**study.sizes._asdict(), "lr": LR, "seed": SEED, "common": common(study), "methods": METHODS},
            "pairs": pairs, "runs": {name: runs[name] for name in order}, "study_wall_s": total}


def table(metrics: dict) -> str:
    """The results table (markdown): the seed model first, then each method."""
    lines = ["| model | SFT / DPO steps | held-out SFT CE | ppl | pref. accuracy | reward margin | DPO loss "
             "| logp chosen | logp rejected | train s | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in metrics["runs"].items():
        accuracy = "0.5 (= ref)" if name == "seed" else f"{r['val/rewards/accuracies']:.3f}"
        wall = f"{r['wall_s']:.0f}" if r.get("wall_s") else "-"
        steps = f"{r['train_s']:.0f}" if r.get("train_s") else "-"
        lines.append(f"| {name} | {r['sft_steps']:.0f} / {r['dpo_steps']:.0f} | {r['val/ce']:.4f} | "
                     f"{r['val/ppl']:.3f} | {accuracy} | {r['val/rewards/margins']:.3f} | {r['val/dpo_loss']:.4f} | "
                     f"{r['val/logps/chosen']:.1f} | {r['val/logps/rejected']:.1f} | {steps} | {wall} |")
    return "\n".join(lines)


def plot(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, label) in zip(axes, (("val/rewards/accuracies", "held-out preference accuracy (vs seed ref.)"),
                                       ("val/dpo_loss", "held-out DPO loss"))):
        for name, r in metrics["runs"].items():
            # the seed is its own reference: every margin is 0, so its accuracy is 0.5 by definition (ties)
            y = 0.5 if name == "seed" and key == "val/rewards/accuracies" else r[key]
            ax.scatter(r["val/ce"], y, s=40)
            below = name == "alright_bresenham"  # it sits next to alright: its label goes under the point
            ax.annotate(name, (r["val/ce"], y), textcoords="offset points", xytext=(5, -12 if below else 4),
                        fontsize=9)
        ax.set_xlabel("held-out Alpaca SFT loss (CE, nats/token; lower is better)")
        ax.set_ylabel(label)
    cfg = metrics["config"]
    fig.suptitle(f"SmolLM2-135M-Instruct, LoRA r8 q,v: {cfg['steps']} steps, lr {cfg['lr']}, seed {cfg['seed']}, "
                 f"lam 0.5 (one seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true")
    args = parse_args(parser, HERE)
    study = Study.from_args(args, FULL, SMOKE)
    metrics_file = study.results / "metrics.json"
    if not args.report_only:
        metrics_file.write_text(json.dumps(run_study(study), indent=2) + "\n")
    metrics = json.loads(metrics_file.read_text())
    plot(metrics, study.results / "tradeoff.png")
    print(table(metrics))


if __name__ == "__main__":
    main()
