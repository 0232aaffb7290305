"""ALRIGHT vs MAXRIGHT vs Mix vs sequential on the toy world, lam in {0.25, 0.5, 0.75}: trade-off plot and table.

    python experiments/interleave_toy/run.py [--steps 200] [--lams 0.25 0.5 0.75] [--threads 1]
    python experiments/interleave_toy/run.py --report-only   # the intervals again from results/val_examples/
    python experiments/interleave_toy/run.py --smoke     # 8 steps, lam 0.5: the same sweeps under smoke/

Everything trains through ``train.py`` with Hydra multirun, the *_toy experiments shortened by ``--steps``:

1. the optimum runs, SFT only and DPO only (``experiment=alright_toy interleave.lam=0.0,1.0``); their best held-out
   losses become the ideal point ``results/optima.json`` (``src.interleave.optima``);
2. ``-m experiment=alright_toy,mix_toy,sequential_toy interleave.lam=...``;
3. ``-m experiment=maxright_toy interleave.lam=... interleave.optima_path=results/optima.json``;
4. ``src.eval.tradeoff`` over the sweep's run dirs: ``results/tradeoff.{png,md}`` and ``results/results.md``;
5. every method's distance to the ideal point minus sequential's at each lam, with a 95% paired bootstrap interval
   over the held-out SFT examples and pairs (``src.eval.ideal_point``), from the per-example validation values that
   ``callback=validation_examples`` writes (validation batch size 1); they are kept, gzipped, in
   ``results/val_examples/``, and ``--report-only`` recomputes the intervals from them alone.

Run dirs go to ``runs/`` (git-ignored); with ``--out DIR``, runs and results go to ``DIR/runs``, ``DIR/results``.
Every run has the same seed, model initialisation, data order per stream, optimizer, step count and validation grid;
the runs differ only in ``interleave``. The ideal point is the SFT-only and DPO-only runs' last held-out losses
(XRIGHT's choice, ``take="last"``), so the intervals can resample it with the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from experiments.smoke import parse_args  # noqa: E402
from src.eval.ideal_point import read_lines, validation, versus  # noqa: E402
from src.eval.tradeoff import load_run, markdown, plot, summarize  # noqa: E402
from src.interleave.optima import write_optima  # noqa: E402

# Short runs for a shared 2-core CPU: no exports or checkpoints, a validation every eighth of the run.
COMMON = ["callbacks.hf_export=null", "callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null",
          "callbacks.progress_bar=null",
          "++trainer.enable_checkpointing=false", "++trainer.enable_model_summary=false",
          # per-example validation values, the units of the paired intervals (choice(): see multirun)
          "data.sft.eval_batch_size=choice(1)", "data.prefs.eval_batch_size=choice(1)",
          "+callback@callbacks.val_examples=validation_examples"]
METHODS = ("sequential", "mix", "alright", "maxright")  # the sweep's runs are <method>_toy-lam<lam>


def multirun(overrides: list[str], sweep_dir: Path, steps: int, threads: int) -> None:
    """``train.py -m``. Hydra composes the sweep's base config before it picks an experiment, so a key that only
    the experiments define (``interleave.*``) can be set there only as a sweep, e.g. ``choice(0.5)``."""
    command = [sys.executable, "train.py", "-m", *overrides, *COMMON, f"trainer.max_steps={steps}",
               f"trainer.val_check_interval={steps // 8}", f"hydra.sweep.dir={sweep_dir}",
               "hydra.sweep.subdir=${experiment_name}-lam${interleave.lam}"]
    print("+", " ".join(command), flush=True)
    # Few threads: on a shared CPU, more OpenMP threads than free cores make every step many times slower.
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def describe(args: argparse.Namespace, optima: dict[str, float], minutes: float) -> str:
    return (f"Toy world: SFT on the toy tasks (every phrasing), DPO on style pairs (the concise phrasing over a "
            f"wordier one); tiny Llama h64 x 2 layers from scratch, SFT micro-batch 12, 4 pairs, lr 1e-3 constant, "
            f"beta 0.1, {args.steps} optimizer steps per run, seed 42. Ideal point from the last validation of "
            f"SFT-only / DPO-only runs of the same length: L_sft* = {optima['sft']:.3f}, L_dpo* = "
            f"{optima['dpo']:.3f}. Losses are held-out (100 SFT examples, 100 pairs) at the last step; train_s is "
            f"the time of the optimizer steps "
            f"(cost/train_seconds), {args.threads} thread(s) on a shared 2-core CPU: single runs under whatever "
            f"load the machine had, so the time columns are indicative only (experiments/bench_interleave.py "
            f"measures cost with interleaved repeats). Whole sweep ({2 + 4 * len(args.lams)} runs): "
            f"{minutes:.1f} min.\n\n")


def archive_examples(runs: Path, folder: Path) -> None:
    """Every run's per-example validation lines, gzipped under ``folder`` (small enough to commit)."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    for lines in sorted(runs.glob("*/*/val_examples.jsonl")):
        (folder / f"{lines.parent.name}.jsonl.gz").write_bytes(gzip.compress(lines.read_bytes(), mtime=0))


BASELINES = ("sequential", "mix")  # every method's distance is compared with each of these
PAIRED = "\nDistance to the ideal point"  # where results.md's interval section starts


def intervals(folder: Path, lams: list[str]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{baseline: {lam: {method: distance, minus_<baseline>, low, high}}}`` from the archived per-example values."""
    def examples(name: str):
        return validation(read_lines(folder / f"{name}.jsonl.gz"))

    out: dict = {baseline: {} for baseline in BASELINES}
    for lam in lams:
        values = {"sft": examples("alright_toy-lam0.0"), "dpo": examples("alright_toy-lam1.0"),
                  **{m: examples(f"{m}_toy-lam{lam}") for m in METHODS}}
        for baseline in BASELINES:
            out[baseline][lam] = versus(values, {m: [m] for m in METHODS}, baseline, ["sft"], ["dpo"])
    return out


def cell(v: dict[str, float], baseline: str) -> str:
    return f"{v[f'minus_{baseline}']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"


def interval_section(found: dict) -> str:
    """results.md's interval table: each method's distance, and minus each baseline's with its 95% CI."""
    lines = [PAIRED + " (the SFT-only and DPO-only runs' last held-out losses) minus sequential's and minus mix's, "
             "with 95% paired bootstrap intervals over the held-out SFT examples and pairs (the ideal point resampled "
             "with them; one training seed, one coin draw):", "",
             "| lam | method | distance to ideal | " + " | ".join(f"minus {b} (95% CI)" for b in BASELINES) + " |",
             "|---|---|---|" + "---|" * len(BASELINES)]
    for lam, by_method in found[BASELINES[0]].items():
        for method, v in by_method.items():
            cells = ["-" if method == b else cell(found[b][lam][method], b) for b in BASELINES]
            lines.append(f"| {lam} | {method} | {v['distance']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of every run")
    parser.add_argument("--lams", nargs="+", default=["0.25", "0.5", "0.75"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--report-only", action="store_true",
                        help="results.md's intervals again from results/val_examples/ (no runs/ needed)")
    args = parse_args(parser, HERE, steps=8, lams=["0.5"])
    runs, results = args.out / "runs", args.out / "results"
    results.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # results.md's interval section again, from the archived values alone
        kept = (results / "results.md").read_text().split(PAIRED)[0]
        (results / "results.md").write_text(kept + interval_section(intervals(results / "val_examples", args.lams)))
        print((results / "results.md").read_text())
        return
    lams = f"choice({','.join(args.lams)})"  # choice(): a sweep even for one value (see multirun)
    start = time.time()

    sweep = partial(multirun, steps=args.steps, threads=args.threads)
    sweep(["experiment=alright_toy", "interleave.lam=choice(0.0,1.0)"], runs / "optima")
    optima_path = results / "optima.json"
    optima = write_optima(runs / "optima" / "alright_toy-lam0.0", runs / "optima" / "alright_toy-lam1.0",
                          optima_path, take="last")
    sweep(["experiment=alright_toy,mix_toy,sequential_toy", f"interleave.lam={lams}"], runs / "sweep")
    sweep(["experiment=maxright_toy", f"interleave.lam={lams}", f"interleave.optima_path={optima_path}"],
          runs / "sweep")
    minutes = (time.time() - start) / 60

    loaded = [load_run(d) for d in sorted((runs / "sweep").iterdir()) if (d / "csv" / "metrics.csv").exists()]
    rows = summarize(loaded, optima)
    plot(loaded, optima, rows, results / "tradeoff.png")
    (results / "tradeoff.md").write_text(markdown(rows))
    archive_examples(runs, results / "val_examples")
    text = describe(args, optima, minutes) + markdown(rows) + interval_section(intervals(results / "val_examples",
                                                                                        args.lams))
    (results / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
