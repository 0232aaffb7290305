"""SDFT vs SFT on SmolLM2-135M-Instruct: a new answer style, forgetting read at equal new-task gain.

    python experiments/smollm2_sdft/run.py                # every phase (reused when finished), then the report
    python experiments/smollm2_sdft/run.py --report-only  # the report again from results/ (no runs/ needed)
    python experiments/smollm2_sdft/run.py --smoke        # tiny stand-ins, 1-2 steps, under smoke/ (CI)

The claim (Yang et al. 2024): fine-tuning on the seed model's own rewrites of the training answers (SDFT) forgets
less than fine-tuning on the gold answers (SFT) for a similar new-task gain. The new task is toy-world addition,
subtraction and multiplication word problems with terse golds ("21 - 17 = 4. The answer is 4.",
``experiments/arithmetic.py``): the seed model solves about a third of them in its own long style, so both the gain and
the change of style can show. Every phase is a real entry-point run, one thread each, reused when finished:

1. ``eval.py eval=bleu``: the seed model's greedy answers to held-out Alpaca prompts (the general prompts). They
   become the fixed answers whose NLL measures forgetting.
2. ``train.py experiment=sft_smollm2`` per method and seed, in stages (``ckpt_path=auto`` continues the same run, with
   a constant lr so the stages equal one run): SFT on the golds; SDFT adds ``distill=gsm8k`` (the seed rewrites each
   gold from the GSM8K distillation template; a rewrite whose last number differs from the gold keeps the gold).
   Each stage's ``hf/`` export is copied to ``exports/step<N>``.
3. ``eval.py eval=forgetting`` on the seed and every export: new-task accuracy (greedy, held-out problems), the
   general prompts' greedy answers (spill-over: "The answer is" in a general answer; their length), the NLL of the
   seed's answers, and Alpaca perplexity.
4. The report: the seed first, every method x seed x step, paired bootstrap intervals over prompts and seeds
   (``python -m src.eval.compare``) at the last step (the NLLs through ``seq_nll``, the mean over sequences of each
   one's NLL, which ``eval=ppl`` resolves per sequence), and forgetting read at equal gain (``src.eval.matched``).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.arithmetic import arithmetic_rows, check_disjoint, write_rows  # noqa: E402
from experiments.smoke import Study, paired_comparison, shown, study_from_cli, study_state  # noqa: E402
from src.eval.metrics.bootstrap import paired_bootstrap  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402
from src.eval.reports.per_prompt import load_samples  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402


class Sizes(NamedTuple):
    train_per_kind: int  # training problems per kind (add, sub, mul), from the toy world's train split
    test_per_kind: int  # held-out problems per kind
    val_rows: int  # of the training file, for val/ce
    general_prompts: int  # held-out Alpaca prompts (the last rows of alpaca_2k.json)
    ppl_rows: int  # Alpaca rows for perplexity (the seed-42 held-out rows)
    stages: tuple[int, ...]  # optimizer steps at which the run is exported and evaluated
    seeds: tuple[int, ...]
    answer_tokens: int  # new-task answers and the distillation's rewrites
    general_tokens: int


FULL = Sizes(train_per_kind=32, test_per_kind=20, val_rows=12, general_prompts=40, ppl_rows=100,
             stages=(5, 10, 20, 40), seeds=(1, 2), answer_tokens=160, general_tokens=128)
SMOKE = Sizes(train_per_kind=4, test_per_kind=1, val_rows=2, general_prompts=2, ppl_rows=2, stages=(1, 2), seeds=(1,),
              answer_tokens=8, general_tokens=8)
LR = 3e-4  # constant: SFT's pilot at 5e-4 reached val CE 0.09 in 20 steps
METHODS = ("sft", "sdft")
SPILL = "The answer is"  # the new task's sentence, in an answer to a general prompt


def files(study: Study) -> dict[str, Path]:
    data = study.runs / "data"
    return {"train": data / "arithmetic_train.json", "test": data / "arithmetic_test.json",
            "general": data / "general_prompts.json", "seed_answers": data / "seed_answers"}


def write_data(study: Study) -> dict[str, Path]:
    s, f = study.sizes, files(study)
    write_rows(f["train"], arithmetic_rows(s.train_per_kind, "train"))
    write_rows(f["test"], arithmetic_rows(s.test_per_kind, "test"))
    alpaca = json.loads((study.inputs.data / "alpaca_2k.json").read_text())
    general = [{"id": f"alpaca-{i}", **row} for i, row in enumerate(alpaca)][-s.general_prompts:]
    write_rows(f["general"], general)
    check_disjoint(f["train"], f["test"])  # raises if an evaluation problem is a training problem
    return f


def train_overrides(study: Study, method: str, seed: int) -> list[str]:
    s, f = study.sizes, files(study)
    every = math.gcd(*s.stages)  # validate (and write last.ckpt) at every stage's end
    base = ["experiment=sft_smollm2", f"data.path={f['train']}", "data.instruction_field=question",
            "data.response_field=answer", "data.max_length=384", f"data.val_size={s.val_rows}",
            f"module.optimizer.lr={LR}", "module/scheduler=constant", f"trainer.val_check_interval={every}",
            f"seed={seed}", "cpu_threads=1", "ckpt_path=auto", *study.inputs.model]
    if method == "sft":
        return base
    # sdft_gsm8k's wiring: the distill stage reads distill.path, training reads its output. One cache for both seeds
    # (the rewrites depend on the seed model and the rows, not the training seed).
    return [*base, "distill=gsm8k", f"distill.path={f['train']}", "data.path=${distill.path}",
            f"distill.generation.max_new_tokens={s.answer_tokens}", "distill.generation.batch_size=32",
            f"distill.cache_dir={study.runs}/cache"]


def eval_overrides(study: Study, model: Path) -> list[str]:
    s, f, alpaca = study.sizes, files(study), study.inputs.data / "alpaca_2k.json"
    return ["eval=forgetting", f"model_path={model}", "cpu_threads=1", "progress=false",
            f"eval.tasks.new_task.path={f['test']}", "eval.tasks.new_task.template=chat",
            f"eval.tasks.new_task.generation.max_new_tokens={s.answer_tokens}",
            f"eval.tasks.general.path={f['general']}",
            f"eval.tasks.general.generation.max_new_tokens={s.general_tokens}",
            "data@eval.tasks.answers_nll.data=alpaca", f"eval.tasks.answers_nll.data.path={f['seed_answers']}",
            "eval.tasks.answers_nll.data.val_split=test", "eval.tasks.answers_nll.data.template=chat",
            "eval.tasks.answers_nll.data.max_length=512",
            "data@eval.tasks.ppl.data=alpaca", f"eval.tasks.ppl.data.path={alpaca}",
            "eval.tasks.ppl.data.template=chat",
            f"eval.tasks.ppl.data.val_size={s.ppl_rows}", "eval.tasks.ppl.data.max_length=512"]


def seed_answers(study: Study) -> None:
    """The seed model's greedy answers to the general prompts, as an Alpaca directory whose ``test`` split they are
    (its ``train`` split: one other Alpaca row, which ``eval=ppl`` loads but does not score)."""
    f = files(study)
    folder, gen = f["seed_answers"], study.runs / "eval" / "seed_general"
    if (folder / "test.json").is_file():
        return
    run_logged("eval.py", ["eval=bleu", f"eval.path={f['general']}", "eval.template=chat",
                           f"eval.generation.max_new_tokens={study.sizes.general_tokens}",
                           f"model_path={study.inputs.seed_model}", "cpu_threads=1", "progress=false",
                           f"hydra.run.dir={gen}"], gen / "evaluate.log", ROOT)
    answers = {r["id"]: r["response"] for r in map(json.loads, (gen / "samples.jsonl").read_text().splitlines())}
    rows = json.loads(f["general"].read_text())
    other = json.loads((study.inputs.data / "alpaca_2k.json").read_text())[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps([other]) + "\n")
    (folder / "test.json").write_text(json.dumps([{"instruction": r["instruction"], "input": r["input"],
                                                    "output": answers[r["id"]]} for r in rows], indent=1) + "\n")


def train_stages(study: Study, method: str, seed: int, walls: dict) -> dict[int, Path]:
    """Train ``method`` with ``seed`` to each stage in turn, the same run continued; ``{step: export dir}``."""
    run = study.runs / f"{method}_s{seed}"
    exports = {}
    for step in study.sizes.stages:
        export = run / "exports" / f"step{step}"
        exports[step] = export
        if (export / "config.json").is_file() or evaluated(study, export):
            continue
        seconds = run_logged("train.py", [*train_overrides(study, method, seed), f"trainer.max_steps={step}",
                                          f"hydra.run.dir={run}"], study.runs / "logs" / f"{run.name}_{step}.log", ROOT)
        walls[f"train_{run.name}_{step}"] = seconds
        shutil.copytree(run / "hf", export, dirs_exist_ok=True)
    return exports


def eval_dir(study: Study, model: Path) -> Path:
    name = "seed" if model == study.inputs.seed_model else f"{model.parents[1].name}_{model.name}"
    return study.runs / "eval" / name


def evaluated(study: Study, model: Path) -> bool:
    return (eval_dir(study, model) / "metrics.json").is_file()


def evaluate(study: Study, model: Path, walls: dict) -> Path:
    out = eval_dir(study, model)
    if not evaluated(study, model):
        walls[f"eval_{out.name}"] = run_logged("eval.py", [*eval_overrides(study, model), f"hydra.run.dir={out}"],
                                               out / "evaluate.log", ROOT)
        if model != study.inputs.seed_model:
            shutil.rmtree(model)  # 0.5 GB each; the run's own checkpoints stay, and retraining rebuilds it
    return out


def run_study(study: Study) -> dict:
    """Every phase, reused when finished; ``{"walls": {phase: seconds}}`` of the phases run this time."""
    walls: dict[str, float] = {}
    write_data(study)
    seed_answers(study)
    evaluate(study, study.inputs.seed_model, walls)
    for method in reversed(METHODS):  # SDFT first: its distillation is the slowest, least sure part
        for seed in study.sizes.seeds:
            for export in train_stages(study, method, seed, walls).values():
                evaluate(study, export, walls)
    return {"walls": walls}


# ---- the report: everything below reads results/ only (the archived evaluations), so --report-only needs no runs/

def load(study: Study, name: str) -> dict:
    folder = study.results / "samples" / name
    metrics = json.loads((folder / "metrics.json").read_text())
    by_task = load_samples(folder / "samples.jsonl.gz")  # greedy: one record per prompt id
    general, task = ([records[0] for _, records in sorted(by_task[t].items())] for t in ("general", "new_task"))
    return {"accuracy": metrics["new_task/accuracy"], "answers_nll": metrics["answers_nll/nll"],
            "ppl": metrics["ppl/ppl"], "spill": sum(SPILL in r["response"] for r in general) / len(general),
            "general_tokens": metrics["general/mean_new_tokens"],
            "per_prompt": {"accuracy": [float(r["correct"]) for r in task],
                           "spill": [float(SPILL in r["response"]) for r in general],
                           "general_tokens": [float(r["num_tokens"]) for r in general]},
            "by_kind": {k: sum(r["correct"] for r in task if f"-{k}-" in r["id"]) / max(1, sum(f"-{k}-" in r["id"]
                                                                                              for r in task))
                        for k in ("add", "sub", "mul")}}


def replaced_fraction(study: Study) -> float | None:
    """The share of golds the first seed's SDFT rewrites replaced (its distill summary; without runs/, the value
    the last full run kept in results/metrics.json)."""
    summaries = sorted((study.runs / f"sdft_s{study.sizes.seeds[0]}").glob("distill/summary.json"))
    if summaries:
        return json.loads(summaries[0].read_text())["replaced_fraction"]
    kept = study.results / "metrics.json"
    return json.loads(kept.read_text()).get("replaced_fraction") if kept.is_file() else None


def report(study: Study, walls: dict) -> dict:
    s = study.sizes
    seed = load(study, "seed")
    cells = {m: {sd: {st: load(study, f"{m}_s{sd}_step{st}") for st in s.stages} for sd in s.seeds} for m in METHODS}
    for m in METHODS:  # the change from the seed model, per cell
        for sd in s.seeds:
            for cell in cells[m][sd].values():
                cell["gain"] = cell["accuracy"] - seed["accuracy"]
                cell["nll_rise"] = cell["answers_nll"] - seed["answers_nll"]
    last = s.stages[-1]
    paired = {}
    for key in ("accuracy", "spill", "general_tokens"):
        a = [cells["sft"][sd][last]["per_prompt"][key] for sd in s.seeds]
        b = [cells["sdft"][sd][last]["per_prompt"][key] for sd in s.seeds]
        paired[key] = paired_bootstrap(a, b, resamples=10_000, seed=0)._asdict()
    from src.eval.matched import INTERPOLATION, compare_curves

    curves = {m: [(mean(cells[m], st, "gain"), mean(cells[m], st, "nll_rise")) for st in s.stages] for m in METHODS}
    # step 0 is the seed model itself; accuracy on a few prompts repeats, so equal gains average their NLL rises
    matched = compare_curves([(0.0, 0.0), *curves["sft"]], [(0.0, 0.0), *curves["sdft"]], ties="mean")
    return {"sizes": s._asdict(), "lr": LR, "seed_model": seed, "cells": cells, "paired_last_step": paired,
            "curves": curves, "matched": matched.__dict__, "interpolation": INTERPOLATION,
            "replaced_fraction": replaced_fraction(study), "walls": walls}


def mean(by_seed: dict, step: int, key: str) -> float:
    values = [cells[step][key] for cells in by_seed.values()]
    return sum(values) / len(values)


def table(metrics: dict) -> str:
    s = metrics["sizes"]
    lines = ["| model | seed | step | new task acc | add / sub / mul | gain | NLL of seed's answers | rise "
             "| Alpaca ppl | general answers saying \"The answer is\" | general answer tokens |", "|---" * 11 + "|"]

    def row(name: str, sd: str, st: str, c: dict) -> str:
        kinds = " / ".join(f"{c['by_kind'][k]:.2f}" for k in ("add", "sub", "mul"))
        return (f"| {name} | {sd} | {st} | {c['accuracy']:.3f} | {kinds} | {c.get('gain', 0):+.3f} | "
                f"{c['answers_nll']:.3f} | {c.get('nll_rise', 0):+.3f} | {c['ppl']:.3f} | {c['spill']:.3f} | "
                f"{c['general_tokens']:.1f} |")

    lines.append(row("seed model", "-", "0", metrics["seed_model"]))
    for m in METHODS:
        for sd in map(str, s["seeds"]):
            for st, cell in metrics["cells"][m][sd].items():
                lines.append(row(m.upper(), sd, st, cell))
    return "\n".join(lines)


def plot(metrics: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for m, colour in zip(METHODS, ("tab:blue", "tab:orange")):
        for sd, by_step in metrics["cells"][m].items():
            pts = [(0.0, 0.0)] + [(c["gain"], c["nll_rise"]) for c in by_step.values()]
            ax.plot(*zip(*pts), "o-", color=colour, alpha=0.35 + 0.3 * (sd == str(metrics["sizes"]["seeds"][0])),
                    label=f"{m.upper()} seed {sd}")
            for st, c in by_step.items():
                ax.annotate(st, (c["gain"], c["nll_rise"]), fontsize=7, color=colour)
    ax.set_xlabel("new-task gain (greedy accuracy - seed's)")
    ax.set_ylabel("forgetting: NLL rise of the seed's own answers")
    ax.set_title("SmolLM2-135M, LoRA r8 q,v: each point an exported step", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    study, report_only = study_from_cli(__doc__, HERE, FULL, SMOKE)
    state = study_state(study, report_only, run_study,  # every evaluation's samples, small enough to commit
                        lambda st: archive_all(st.runs / "eval", st.results / "samples"))
    metrics = json.loads(json.dumps(report(study, state["walls"])))  # int keys become strings, as in the file
    last = study.sizes.stages[-1]  # comparison.md: SDFT against SFT at the last step, paired, seeds grouped
    rows = paired_comparison({m: [study.results / "samples" / f"{m}_s{sd}_step{last}" for sd in study.sizes.seeds]
                              for m in METHODS}, "sft", study.results)
    # the NLLs per sequence (eval=ppl's seq_nll), which the token-weighted nll and ppl above cannot resample
    metrics["paired_seq_nll_last_step"] = {r["metric"]: r for r in rows if r["metric"].endswith("/seq_nll")}
    (study.results / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot(metrics, study.results / "forgetting_vs_gain.png")
    print(table(metrics))
    print(json.dumps({k: metrics[k] for k in ("paired_last_step", "paired_seq_nll_last_step", "matched")}, indent=1))
    print("results:", shown(study.results))


if __name__ == "__main__":
    main()
