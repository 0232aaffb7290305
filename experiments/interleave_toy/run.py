"""ALRIGHT vs MAXRIGHT vs Mix vs sequential on the toy world, lam in {0.25, 0.5, 0.75}: trade-off plot and table.

    python experiments/interleave_toy/run.py [--steps 200] [--lams 0.25 0.5 0.75] [--threads 1]
    python experiments/interleave_toy/run.py --smoke     # 8 steps, lam 0.5: the same sweeps under smoke/

Everything trains through ``train.py`` with Hydra multirun, the *_toy experiments shortened by ``--steps``:

1. the optimum runs, SFT only and DPO only (``experiment=alright_toy interleave.lam=0.0,1.0``); their best held-out
   losses become the ideal point ``results/optima.json`` (``src.interleave.optima``);
2. ``-m experiment=alright_toy,mix_toy,sequential_toy interleave.lam=...``;
3. ``-m experiment=maxright_toy interleave.lam=... interleave.optima_path=results/optima.json``;
4. ``src.eval.tradeoff`` over the sweep's run dirs: ``results/tradeoff.{png,md}`` and ``results/results.md``.

Run dirs go to ``runs/`` (git-ignored); with ``--out DIR``, runs and results go to ``DIR/runs``, ``DIR/results``.
Every run has the same seed, model initialisation, data order per stream, optimizer, step count and validation grid;
the runs differ only in ``interleave``.
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
from src.eval.tradeoff import load_run, markdown, plot, summarize  # noqa: E402
from src.interleave.optima import write_optima  # noqa: E402

# Short runs for a shared 2-core CPU: no exports or checkpoints, a validation every eighth of the run.
COMMON = ["callbacks.hf_export=null", "callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null",
          "callbacks.progress_bar=null",
          "++trainer.enable_checkpointing=false", "++trainer.enable_model_summary=false"]


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
            f"beta 0.1, {args.steps} optimizer steps per run, seed 42. Ideal point from SFT-only / DPO-only runs "
            f"of the same length: L_sft* = {optima['sft']:.3f}, L_dpo* = {optima['dpo']:.3f}. Losses are held-out "
            f"(100 SFT examples, 100 pairs) at the last step; train_s is the time of the optimizer steps "
            f"(cost/train_seconds), {args.threads} thread(s) on a shared 2-core CPU: single runs under whatever "
            f"load the machine had, so the time columns are indicative only (experiments/bench_interleave.py "
            f"measures cost with interleaved repeats). Whole sweep ({2 + 4 * len(args.lams)} runs): "
            f"{minutes:.1f} min.\n\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of every run")
    parser.add_argument("--lams", nargs="+", default=["0.25", "0.5", "0.75"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    args = parse_args(parser, HERE, steps=8, lams=["0.5"])
    runs, results = args.out / "runs", args.out / "results"
    results.mkdir(parents=True, exist_ok=True)
    lams = f"choice({','.join(args.lams)})"  # choice(): a sweep even for one value (see multirun)
    start = time.time()

    sweep = partial(multirun, steps=args.steps, threads=args.threads)
    sweep(["experiment=alright_toy", "interleave.lam=choice(0.0,1.0)"], runs / "optima")
    optima_path = results / "optima.json"
    optima = write_optima(runs / "optima" / "alright_toy-lam0.0", runs / "optima" / "alright_toy-lam1.0",
                          optima_path)
    sweep(["experiment=alright_toy,mix_toy,sequential_toy", f"interleave.lam={lams}"], runs / "sweep")
    sweep(["experiment=maxright_toy", f"interleave.lam={lams}", f"interleave.optima_path={optima_path}"],
          runs / "sweep")
    minutes = (time.time() - start) / 60

    loaded = [load_run(d) for d in sorted((runs / "sweep").iterdir()) if (d / "csv" / "metrics.csv").exists()]
    rows = summarize(loaded, optima)
    plot(loaded, optima, rows, results / "tradeoff.png")
    (results / "tradeoff.md").write_text(markdown(rows))
    header = describe(args, optima, minutes)
    (results / "results.md").write_text(header + markdown(rows))
    print(header + markdown(rows))


if __name__ == "__main__":
    main()
