"""ALRIGHT and MAXRIGHT against sequential and mixed training on SmolLM2-135M-Instruct, with objectives that conflict.

    python experiments/smollm2_interleave/run.py                # pairs (cached), 7 runs, the report
    python experiments/smollm2_interleave/run.py --report-only  # the report again from runs/
    python experiments/smollm2_interleave/run.py --smoke        # tiny stand-ins, 24 rows, 4 steps, under smoke/ (CI)

The claim (XRIGHT, arXiv 2410.15483): alternating SFT and DPO steps (ALRIGHT: a coin with P(DPO) = lam; MAXRIGHT:
the objective further from its optimum) ends closer to the ideal point (L_sft*, L_dpo*) than SFT-then-DPO, at the
cost of sequential training and below mixing both losses every step. That needs objectives that conflict: here SFT
trains on Alpaca's gold answers while DPO prefers the seed model's own greedy answer over the gold one (pairs from
other Alpaca rows), so each objective pulls the model away from what the other wants.

Rows of ``/work/shared/data/alpaca_2k.json`` by index, all disjoint: pairs for training [0, 80), held-out pairs
[80, 128), held-out SFT rows [128, 176), SFT training rows [176, 2000). A pair's prompt is the row's user turn; the
seed model's greedy response (``src.eval.engine.hf_engine.generate_samples``, at most ``max_new_tokens``, chat
template) is generated once into ``pairs/{train,test}.jsonl`` (kept in git: it is the slow part), stored with the
gold as chosen; the study swaps them (``conflict_pairs``: chosen = the seed's answer, rejected = the gold).

Every run is ``train.py experiment=alright_smollm2`` (LoRA r 8 on q,v, constant lr, beta 0.1, the seed model as the
precomputed reference), 40 steps with a validation every 10 steps on both held-out sets, one example per batch,
written per example by ``callback=validation_examples``. At each training seed (LoRA initialisation and data order,
``Sizes.seeds``): SFT only and DPO only (lam 0 / 1; their final held-out losses are that seed's ideal point,
``results/optima_s<seed>.json``, which its MAXRIGHT reads; the mean over seeds, ``results/optima.json``, is the one
distances are measured to), then at lam 0.5 sequential, mix, ALRIGHT with two coin seeds (``interleave.seed``) and
MAXRIGHT (deterministic given the training seed and the optima). The report: final losses and the distance to the
ideal point, each method against sequential and against mix with a paired bootstrap interval over held-out examples
(and each method's runs), and the trade-off plot (``python -m src.eval.tradeoff``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.smoke import Study, shown, study_from_cli, study_state  # noqa: E402
from src.eval.ideal_point import read_lines, validation, versus  # noqa: E402
from src.interleave.optima import write_optima  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402


class Sizes(NamedTuple):
    splits: dict[str, tuple[int, int]]  # rows of alpaca_2k.json by index, all disjoint
    max_new_tokens: int  # of the seed's responses
    steps: int
    val_every: int
    seeds: tuple[int, ...]  # training seeds: LoRA initialisation and data order; every method runs at each


FULL = Sizes({"pairs_train": (0, 80), "pairs_test": (80, 128), "sft_test": (128, 176), "sft_train": (176, 2000)},
             max_new_tokens=128, steps=40, val_every=10, seeds=(42, 2))
SMOKE = Sizes({"pairs_train": (0, 4), "pairs_test": (4, 8), "sft_test": (8, 12), "sft_train": (12, 24)},
              max_new_tokens=8, steps=4, val_every=2, seeds=(42,))
LR, LAM, RESAMPLES = 2e-4, 0.5, 10_000
COINS = (1, 2)  # ALRIGHT's coin seeds (interleave.seed) at each training seed


def pairs_dir(study: Study) -> Path:
    return study.out / "pairs"


def sft_dir(study: Study) -> Path:
    return study.runs / "sft_data"


def conflict_dir(study: Study) -> Path:
    return study.runs / "conflict_pairs"


def optima_file(study: Study, seed: int | None = None) -> Path:
    """A training seed's ideal point (what its MAXRIGHT run reads), or with no seed the mean over seeds (the one the
    distances are measured to)."""
    return study.results / ("optima.json" if seed is None else f"optima_s{seed}.json")


def common(study: Study) -> list[str]:
    """Every run's overrides besides its method's."""
    s = study.sizes
    return ["experiment=alright_smollm2", f"data.sft.path={sft_dir(study)}", "data.sft.val_split=test",
            f"data.prefs.path={conflict_dir(study)}", "data.prefs.train_split=train", "data.prefs.val_split=test",
            "data.sft.eval_batch_size=1", "data.prefs.eval_batch_size=1", f"module.optimizer.lr={LR}",
            f"module.reference_cache_dir={study.runs / 'reference'}", f"trainer.max_steps={s.steps}",
            f"trainer.val_check_interval={s.val_every}", "cpu_threads=1", *study.inputs.model,
            "+callback@callbacks.val_examples=validation_examples",
            # no exports or checkpoints: the runs are measured by their own validations
            "callbacks.hf_export=null", "callbacks.model_checkpoint=null", "++callbacks.last_checkpoint=null",
            "callbacks.progress_bar=null", "++trainer.enable_checkpointing=false"]


def methods(study: Study) -> dict[str, list[str]]:
    """Run name -> its overrides, training seed by training seed; at each, the two single-objective runs first
    (MAXRIGHT reads their optima). Only the very first run validates before training (the seed model's row); the
    others start from the same weights."""
    runs, once = {}, "validate_before_fit=false"
    for seed in study.sizes.seeds:
        at = [f"seed={seed}"] + ([once] if runs else [])
        runs[f"sft_s{seed}"] = ["interleave.lam=0.0", *at]
        runs[f"dpo_s{seed}"] = ["interleave.lam=1.0", f"seed={seed}", once]
        joint = [f"interleave.lam={LAM}", f"seed={seed}", once]
        runs[f"sequential_s{seed}"] = ["interleave=sequential", *joint]
        runs[f"mix_s{seed}"] = ["interleave=mix", *joint]
        runs |= {f"alright_coin{c}_s{seed}": [*joint, f"interleave.seed={c}"] for c in COINS}
        runs[f"maxright_s{seed}"] = ["interleave=maxright", *joint,
                                     f"interleave.optima_path={optima_file(study, seed)}"]
    return runs


def groups(study: Study) -> dict[str, list[str]]:
    """The compared methods and their runs (training seeds, and ALRIGHT's coins); then the single-objective runs."""
    seeds = study.sizes.seeds
    return {"sequential": [f"sequential_s{sd}" for sd in seeds], "mix": [f"mix_s{sd}" for sd in seeds],
            "alright": [f"alright_coin{c}_s{sd}" for sd in seeds for c in COINS],
            "maxright": [f"maxright_s{sd}" for sd in seeds]}


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




def write_conflict_pairs(study: Study) -> dict[str, int]:
    """The cached pairs with chosen and rejected swapped: chosen = the seed's own answer, rejected = the gold."""
    out, counts = conflict_dir(study), {}
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        pairs = [json.loads(line) for line in (pairs_dir(study) / f"{split}.jsonl").read_text().splitlines()]
        swapped = [{"row": p["row"], "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in swapped))
        counts[split] = len(swapped)
    return counts


def train(name: str, overrides: list[str], study: Study, walls: dict) -> Path:
    """One training run into runs/<name> unless it finished before."""
    run_dir = study.runs / name
    if not (run_dir / "metrics.json").is_file():
        (run_dir / "val_examples.jsonl").unlink(missing_ok=True)  # a stopped run starts again: no duplicate lines
        walls[f"train_{name}"] = run_logged("train.py", [*common(study), *overrides, f"hydra.run.dir={run_dir}"],
                                            study.runs / "logs" / f"{name}.log", ROOT)
    return run_dir


def run_study(study: Study) -> dict:
    walls: dict[str, float] = {}
    rows = json.loads((study.inputs.data / "alpaca_2k.json").read_text())
    write_sft_data(rows, study)
    summary = make_pairs(rows, study)
    counts = write_conflict_pairs(study)
    for name, overrides in methods(study).items():
        train(name, overrides, study, walls)
        if name.startswith("dpo_s"):  # the seed's ideal point, before its MAXRIGHT needs it: final held-out losses
            seed = int(name.removeprefix("dpo_s"))  # (XRIGHT's choice)
            write_optima(study.runs / f"sft_s{seed}", study.runs / name, optima_file(study, seed), take="last")
    per_seed = [json.loads(optima_file(study, seed).read_text()) for seed in study.sizes.seeds]
    pooled = {k: sum(o[k] for o in per_seed) / len(per_seed) for k in ("sft", "dpo")}
    optima_file(study).write_text(json.dumps({**pooled, "mean_of": [optima_file(study, sd).name for sd in
                                                                    study.sizes.seeds], "take": "last"}, indent=2))
    return {"walls": walls, "pairs": summary, "conflict_pairs": counts}


# ---- the report: everything below reads results/ (runs/ only for the trade-off plot, when it is there) ----

def archive_examples(study: Study) -> None:
    """Every run's per-example validation lines, gzipped under results/val_examples/ (small enough to commit)."""
    import gzip

    folder = study.results / "val_examples"
    folder.mkdir(parents=True, exist_ok=True)
    for name in methods(study):
        data = (study.runs / name / "val_examples.jsonl").read_bytes()
        (folder / f"{name}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))


def examples(study: Study, name: str) -> list[dict]:
    return read_lines(study.results / "val_examples" / f"{name}.jsonl.gz")


def report(study: Study, state: dict) -> dict:
    runs, seeds, compared = methods(study), study.sizes.seeds, groups(study)
    values = {name: validation(examples(study, name)) for name in runs}
    optima = json.loads(optima_file(study).read_text())
    final = {}
    for name in runs:
        final[name] = dict(zip(("sft_loss", "dpo_loss"), values[name].losses()))
        final[name]["distance"] = math.hypot(final[name]["sft_loss"] - optima["sft"],
                                             final[name]["dpo_loss"] - optima["dpo"])
        final[name]["logged"] = logged_values(study, name)
    if all((study.runs / n / "csv" / "metrics.csv").is_file() for n in runs):  # the plot needs the runs' own logs
        joint = [str(study.runs / n) for group in compared.values() for n in group]
        subprocess.run([sys.executable, "-m", "src.eval.tradeoff", *joint, f"--optima={optima_file(study)}",
                        f"--out-dir={study.results}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    seed_model = first_validation(examples(study, f"sft_s{seeds[0]}"))
    return {"config": {**study.sizes._asdict(), "lr": LR, "lam": LAM, "coins": COINS, "common": common(study),
                       "methods": runs, "groups": compared},
            "optima": {k: optima[k] for k in ("sft", "dpo")}, "seed_model": seed_model, "final": final,
            **{f"versus_{baseline}": versus(values, compared, baseline, [f"sft_s{sd}" for sd in seeds],
                                            [f"dpo_s{sd}" for sd in seeds], RESAMPLES)
               for baseline in ("sequential", "mix")},
            "resamples": RESAMPLES, **state}


def logged_values(study: Study, name: str) -> dict:
    """What the run logged at its end (kept in metrics.json, so --report-only needs no runs/)."""
    path = study.runs / name / "metrics.json"
    if not path.is_file():
        old = study.results / "metrics.json"
        return json.loads(old.read_text())["final"][name]["logged"]
    logged = json.loads(path.read_text())
    return {k: logged.get(k) for k in ("val/sft_loss", "val/dpo_loss", "schedule/sft_steps", "schedule/dpo_steps",
                                       "cost/train_seconds")}


def first_validation(lines: list[dict]) -> dict[str, float]:
    """The step-0 validation (before any update: LoRA's B is zero, so this is the seed model)."""
    return dict(zip(("sft_loss", "dpo_loss"), validation(lines, step=0).losses()))


def table(metrics: dict) -> str:
    """Every run's final held-out losses, then each method against sequential over all its runs."""
    lines = ["| run | SFT / DPO steps | held-out SFT loss | held-out DPO loss | distance to ideal |",
             "|---|---|---|---|---|"]
    seed = metrics["seed_model"]
    lines.append(f"| seed model (step 0) | 0 / 0 | {seed['sft_loss']:.4f} | {seed['dpo_loss']:.4f} | - |")
    for name, f in metrics["final"].items():
        steps = f"{f['logged']['schedule/sft_steps'] or 0:.0f} / {f['logged']['schedule/dpo_steps'] or 0:.0f}"
        lines.append(f"| {name} | {steps} | {f['sft_loss']:.4f} | {f['dpo_loss']:.4f} | {f['distance']:.4f} |")
    lines += ["", "| method | runs | mean distance to ideal | minus sequential (95% CI) | minus mix (95% CI) |",
              "|---|---|---|---|---|"]
    for group, runs in metrics["config"]["groups"].items():
        cells = ["-" if group == b else "{:+.4f} [{:+.4f}, {:+.4f}]".format(
            *(metrics[f"versus_{b}"][group][k] for k in (f"minus_{b}", "low", "high"))) for b in ("sequential", "mix")]
        lines.append(f"| {group} | {len(runs)} | {metrics['versus_sequential'][group]['distance']:.4f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    study, report_only = study_from_cli(__doc__, HERE, FULL, SMOKE)
    state = study_state(study, report_only, run_study, archive_examples)
    metrics = report(study, state)
    (study.results / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(table(metrics))
    print("results:", shown(study.results))


if __name__ == "__main__":
    main()
