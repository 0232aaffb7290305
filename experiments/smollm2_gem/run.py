"""GEM vs CE on SmolLM2-135M-Instruct: does GEM keep the pretrained model's diversity at the same pass@1?

    python experiments/smollm2_gem/run.py                # every phase (reused when finished), then the report
    python experiments/smollm2_gem/run.py --report-only  # the report again from runs/ (no training, no generation)
    python experiments/smollm2_gem/run.py --smoke        # tiny stand-ins, 2 steps, under smoke/ (CI)

The claim (Li et al., GEM): fine-tuning with GEM instead of CE keeps more of the model's output diversity, which pays
off when answers are sampled (pass@k, majority voting). The fine-tuning data is a narrow task with one terse answer
style (toy-world addition, subtraction and multiplication with golds like "21 - 17 = 4. The answer is 4.",
``experiments/arithmetic.py``), where CE can collapse the model's many ways of answering into one. Every phase is a
real entry-point run, one thread each, reused when finished:

1. ``train.py experiment=sft_smollm2`` for CE, GEM with the paper's ``h=logsigmoid`` (beta 0.7) and GEM with
   ``h=linear`` beside it: the same steps, data order and constant lr schedule. The lr of each objective is tuned on
   its final ``val/ce`` (held-out training-format rows) over LRS with the first seed; the other seeds train at it.
2. ``eval.py eval=gsm8k`` on held-out problems (the toy world's test split) with n samples per problem at each of
   TEMPERATURES (top_k 50, top_p 0.9, GEM's voting settings), for the seed model and every tuned run: pass@1
   (= sampled accuracy), pass@k, maj@k, and self-BLEU and distinct-n among each problem's samples.
3. The report: the seed model first; every objective's mean over seeds; each GEM against CE with paired bootstrap
   intervals over problems and seeds at each temperature (``python -m src.eval.compare``); and each diversity metric
   read at the same pass@1 on the curves that the temperatures trace (``src.eval.matched``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root is not on sys.path

from experiments.arithmetic import arithmetic_rows, check_disjoint, write_rows  # noqa: E402
from experiments.smoke import Study, paired_comparison, shown, study_from_cli, study_state  # noqa: E402
from src.eval.matched import INTERPOLATION, compare_curves  # noqa: E402
from src.eval.reports.archive import archive_all  # noqa: E402
from src.utils.machine import run_logged  # noqa: E402


class Sizes(NamedTuple):
    train_per_kind: int  # training problems per kind (add, sub, mul), from the toy world's train split
    test_per_kind: int  # held-out problems per kind
    val_rows: int  # of the training file: the lr is tuned on their val/ce
    steps: int
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]  # the first also tunes the lr
    temperatures: tuple[float, ...]
    n: int  # samples per problem
    max_new_tokens: int


FULL = Sizes(train_per_kind=32, test_per_kind=10, val_rows=12, steps=40, lrs=(1e-4, 3e-4, 1e-3), seeds=(1, 2),
             temperatures=(0.6, 1.0), n=8, max_new_tokens=128)
SMOKE = Sizes(train_per_kind=4, test_per_kind=1, val_rows=2, steps=2, lrs=(1e-3,), seeds=(1,), temperatures=(1.0,),
              n=2, max_new_tokens=8)
OBJECTIVES = {"ce": ["module=ce"],
              "gem_logsigmoid": ["module=gem", "module.beta=0.7", "module.h=logsigmoid"],
              "gem_linear": ["module=gem", "module.beta=0.7", "module.h=linear"]}
COLUMNS = ("accuracy", "pass@{n}", "maj@{n}", "self_bleu", "distinct_2", "mean_new_tokens")
DIVERSITY = ("self_bleu", "distinct_2")  # self-BLEU: lower is more diverse


def files(study: Study) -> dict[str, Path]:
    data = study.runs / "data"
    return {"train": data / "arithmetic_train.json", "test": data / "arithmetic_test.json"}


def write_data(study: Study) -> None:
    s, f = study.sizes, files(study)
    write_rows(f["train"], arithmetic_rows(s.train_per_kind, "train"))
    write_rows(f["test"], arithmetic_rows(s.test_per_kind, "test"))
    check_disjoint(f["train"], f["test"])  # raises if an evaluation problem is a training problem


def train(study: Study, objective: str, lr: float, seed: int, walls: dict) -> Path:
    s = study.sizes
    run = study.runs / f"{objective}_lr{lr:g}_s{seed}"
    if not (run / "hf" / "config.json").is_file():
        # the lr after module=: the module option would otherwise bring its own default back
        overrides = ["experiment=sft_smollm2", f"data.path={files(study)['train']}", "data.instruction_field=question",
                     "data.response_field=answer", "data.max_length=384", f"data.val_size={s.val_rows}",
                     *OBJECTIVES[objective], f"module.optimizer.lr={lr}", "module/scheduler=constant",
                     f"trainer.max_steps={s.steps}", f"trainer.val_check_interval={s.steps}", f"seed={seed}",
                     "cpu_threads=1", "ckpt_path=auto", f"hydra.run.dir={run}", *study.inputs.model]
        walls[f"train_{run.name}"] = run_logged("train.py", overrides, study.runs / "logs" / f"{run.name}.log", ROOT)
        shutil.rmtree(run / "checkpoints")  # 1 GB; the run is finished and hf/ is what the evaluations load
    return run


def log_seconds(log: Path) -> float:
    """A finished phase's wall seconds from its log: the first line's timestamp to the file's last write (so a study
    stopped and run again still reports every phase it reuses)."""
    import re
    from datetime import datetime

    first = re.search(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]", log.read_text(), re.MULTILINE)
    if first is None:
        return float("nan")
    return log.stat().st_mtime - datetime.strptime(first.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def final_val_ce(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["val/ce"]


def evaluate(study: Study, name: str, model: Path, temperature: float, walls: dict) -> Path:
    s, out = study.sizes, study.runs / "eval" / f"{name}_T{temperature:g}"
    if not (out / "metrics.json").is_file():
        overrides = ["eval=gsm8k", "eval.name=arithmetic", f"eval.path={files(study)['test']}", "eval.template=chat",
                     "eval.diversity=true", f"eval.generation.n={s.n}", f"eval.generation.temperature={temperature}",
                     "eval.generation.top_k=50", "eval.generation.top_p=0.9",
                     f"eval.generation.max_new_tokens={s.max_new_tokens}", f"model_path={model}", "cpu_threads=1",
                     "progress=false", f"hydra.run.dir={out}"]
        walls[f"eval_{out.name}"] = run_logged("eval.py", overrides, out / "evaluate.log", ROOT)
    return out


def run_study(study: Study) -> dict:
    """Train (tuning first), then evaluate; returns ``{"walls", "tuning", "models"}`` (models: name -> path)."""
    s, walls = study.sizes, {}
    write_data(study)
    tuning = {obj: {lr: final_val_ce(train(study, obj, lr, s.seeds[0], walls)) for lr in s.lrs} for obj in OBJECTIVES}
    models = {"seed": study.inputs.seed_model}
    for obj, by_lr in tuning.items():
        best = min(by_lr, key=by_lr.get)
        for seed in s.seeds:
            models[f"{obj}_s{seed}"] = train(study, obj, best, seed, walls)
    for temperature in s.temperatures:  # every model at one temperature before the next
        for name, model in models.items():
            evaluate(study, name, model, temperature, walls)
    return {"walls": walls, "tuning": tuning, "models": {k: str(v) for k, v in models.items()}}


# ---- the report: everything below reads results/ (the archived evaluations), so --report-only needs no runs/

def key(column: str, n: int) -> str:
    return "arithmetic/" + column.format(n=n)


def report(study: Study, state: dict) -> dict:
    s = study.sizes
    names = {"seed": ["seed"], **{obj: [f"{obj}_s{sd}" for sd in s.seeds] for obj in OBJECTIVES}}
    cols = [key(c, s.n) for c in COLUMNS]
    means: dict[str, dict[str, dict[str, float]]] = {}  # method -> T -> column -> mean over seeds
    for method, runs in names.items():
        means[method] = {}
        for t in s.temperatures:
            found = [json.loads((study.results / "samples" / f"{r}_T{t:g}" / "metrics.json").read_text())
                     for r in runs]
            means[method][f"{t:g}"] = {c: sum(m[c] for m in found) / len(found) for c in cols}
    matched = {}
    for obj in ("gem_logsigmoid", "gem_linear"):
        for y in (*DIVERSITY, key("pass@{n}", s.n), key("maj@{n}", s.n)):
            curve = {m: [(means[m][f"{t:g}"][key("accuracy", s.n)], means[m][f"{t:g}"][y if "/" in y else key(y, s.n)])
                         for t in s.temperatures] for m in ("ce", obj)}
            matched[f"{obj}/{y.split('/')[-1]}"] = compare_curves(curve["ce"], curve[obj], ties="mean").__dict__
    for t in s.temperatures:  # comparison.md per temperature: each method against CE, paired over problems and seeds
        paired_comparison({m: [study.results / "samples" / f"{r}_T{t:g}" for r in runs] for m, runs in names.items()},
                          "ce", study.results / f"T{t:g}")
    return {"sizes": s._asdict(), "objectives": OBJECTIVES, "tuning": state["tuning"], "walls": phase_walls(study),
            "lr": {obj: min(by, key=by.get) for obj, by in state["tuning"].items()}, "means": means,
            "matched_at_pass@1": matched, "interpolation": INTERPOLATION, "study_s": state["walls"].get("study_s")}


def phase_walls(study: Study) -> dict[str, float]:
    """Every phase's wall seconds from its log in runs/; without runs/, what the last full run kept."""
    if not (study.runs / "logs").is_dir():
        return json.loads((study.results / "metrics.json").read_text())["walls"]
    walls = {log.stem: log_seconds(log) for log in sorted((study.runs / "logs").glob("*.log"))}
    walls |= {f"eval_{d.name}": log_seconds(d / "evaluate.log") for d in sorted((study.runs / "eval").iterdir())}
    return walls


def table(metrics: dict) -> str:
    s = metrics["sizes"]
    heads = [c.format(n=s["n"]) for c in COLUMNS]
    lines = ["| model | lr | T | " + " | ".join(heads) + " |", "|---" * (len(heads) + 3) + "|"]
    for method, by_t in metrics["means"].items():
        lr = f"{float(metrics['lr'][method]):g}" if method in metrics["lr"] else "-"
        for t, row in by_t.items():
            lines.append(f"| {method} | {lr} | {t} | " + " | ".join(f"{row[key(c, s['n'])]:.3f}" for c in COLUMNS)
                         + " |")
    return "\n".join(lines)


def plot(metrics: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = metrics["sizes"]["n"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, y in zip(axes, DIVERSITY):
        for method, by_t in metrics["means"].items():
            pts = [(row[key("accuracy", n)], row[key(y, n)]) for row in by_t.values()]
            ax.plot(*zip(*pts), "o-", label=method)
            for t, (px, py) in zip(by_t, pts):
                ax.annotate(f"T{t}", (px, py), fontsize=7)
        ax.set_xlabel("pass@1 (sampled accuracy)")
        ax.set_ylabel(y + (" (lower = more diverse)" if y == "self_bleu" else ""))
    fig.suptitle(f"SmolLM2-135M: diversity against pass@1, mean over seeds, {n} samples per held-out problem",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    study, report_only = study_from_cli(__doc__, HERE, FULL, SMOKE)
    state = study_state(study, report_only, run_study,  # every evaluation's samples, small enough to commit
                        lambda st: archive_all(st.runs / "eval", st.results / "samples"))
    metrics = report(study, state)
    (study.results / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot(metrics, study.results / "diversity_vs_pass1.png")
    print(table(metrics))
    print("results:", shown(study.results))


if __name__ == "__main__":
    main()
