"""Wall time per optimizer step of ALRIGHT, MAXRIGHT and Mix against sequential, at the same number of steps.

    python experiments/bench_interleave.py [--steps 40] [--repeats 3] [--threads 2] [--out <markdown file>]

One process, one model and data setup; every (repeat, method) is a fresh ``trainer.fit`` of ``--steps`` optimizer
steps from the same initial weights and seed, with the methods in a rotated order each repeat (interleaved repeats,
so drift in machine load hits every method alike). lam = 0.5 everywhere: sequential trains SFT for the first half
and DPO for the second, ALRIGHT "bresenham" alternates (the same number of DPO steps as sequential, so any gap is
scheduling overhead), ALRIGHT "random" draws (its DPO count is in the table), MAXRIGHT refreshes on held-out probes
every 10 steps, Mix computes both objectives every step.

Step time is the scheduler callback's own measurement (``cost/train_seconds`` / steps: choice, probe, data pull,
forward, backward, optimizer step); "fit" is the whole ``trainer.fit`` wall time per step (Lightning's loop
included). Peak memory: ``cost/*_peak_mb`` (CPU: peak RSS of the process, see ``src.interleave.cost``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from src.callbacks.interleave import InterleaveScheduler  # noqa: E402
from src.datamodules.interleave import InterleaveDataModule  # noqa: E402
from src.datamodules.preference import ToyWorldPreferenceDataModule  # noqa: E402
from src.datamodules.toyworld import ToyWorldSFTDataModule  # noqa: E402
from src.interleave.schedules import Alright, MaxRight, Mix, Sequential  # noqa: E402
from src.modules.backbones import tiny_llama  # noqa: E402
from src.modules.interleave import InterleaveModule  # noqa: E402

LAM = 0.5
METHODS = {
    "sequential": lambda: Sequential(lam=LAM),
    "alright (bresenham)": lambda: Alright(lam=LAM, mode="bresenham"),
    "alright (random)": lambda: Alright(lam=LAM, seed=42),
    "maxright": lambda: MaxRight(lam=LAM, refresh_every=10),
    "mix": lambda: Mix(lam=LAM),
}
MODEL = dict(hidden_size=128, num_layers=4, num_heads=4)


def fit_once(name: str, sources: tuple, args: argparse.Namespace) -> dict[str, float]:
    L.seed_everything(0, verbose=False)
    dm = InterleaveDataModule(*sources)  # fresh streams: every run sees the same data order
    module = InterleaveModule(model=partial(tiny_llama, dm.tokenizer, **MODEL),
                              optimizer=partial(torch.optim.AdamW, lr=1e-4, betas=(0.9, 0.95)))
    scheduler = InterleaveScheduler(METHODS[name]())
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        gradient_clip_val=1.0, callbacks=[scheduler])
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - start
    return {"step_ms": 1000 * scheduler.seconds["train"] / args.steps, "fit_ms": 1000 * fit_s / args.steps,
            "dpo_steps": scheduler.steps["dpo"], "sft_steps": scheduler.steps["sft"],
            "peak_mb": max(scheduler.peaks.values())}


def table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    base = statistics.median(r["step_ms"] for r in results["sequential"])
    lines = [
        f"CPU benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, a shared machine. Tiny Llama {MODEL} from scratch, toy world, "
        f"SFT micro-batch 12, 4 pairs (reference: frozen copy), AdamW, lam = {LAM}, {args.steps} optimizer steps "
        f"per run, {args.repeats} interleaved repeats; median [min, max] over repeats.",
        "",
        "| method | SFT / DPO steps | ms per step | vs sequential | fit ms per step | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        step = [r["step_ms"] for r in runs]
        fit = statistics.median(r["fit_ms"] for r in runs)
        lines.append(
            f"| {name} | {runs[0]['sft_steps']} / {runs[0]['dpo_steps']} | {statistics.median(step):.0f} "
            f"[{min(step):.0f}, {max(step):.0f}] | {100 * (statistics.median(step) / base - 1):+.1f}% | {fit:.0f} | "
            f"{max(r['peak_mb'] for r in runs):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_interleave_cpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sources = (ToyWorldSFTDataModule(num_train=1000, num_val=50, batch_size=12, seed=0),
               ToyWorldPreferenceDataModule(num_train=500, num_val=50, batch_size=4, seed=0))
    for source in sources:
        source.setup("fit")
    names = list(METHODS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    fit_once("sequential", sources, argparse.Namespace(steps=4))  # warm-up: allocator, kernels, imports
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            results[name].append(fit_once(name, sources, args))
            print(repeat, name, results[name][-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table(results, args))
    print(table(results, args))


if __name__ == "__main__":
    main()
