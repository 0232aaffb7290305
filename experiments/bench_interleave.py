"""Wall time per optimizer step of ALRIGHT, MAXRIGHT and Mix against sequential, at the same number of steps.

    python experiments/bench_interleave.py [--steps 60] [--repeats 7] [--threads 1] [--out <markdown file>]

One process, one model and data setup; every (repeat, method) is a fresh ``trainer.fit`` of ``--steps`` optimizer
steps from the same initial weights and seed, with the methods in a rotated order each repeat (interleaved repeats,
so drift in machine load hits every method alike). lam = 0.5 everywhere: sequential trains SFT for the first half
and DPO for the second, ALRIGHT "bresenham" alternates (the same number of DPO steps as sequential, so any gap is
scheduling overhead), ALRIGHT "random" draws, MAXRIGHT picks by its gaps after held-out probes every 10 steps, Mix
computes both objectives every step. MAXRIGHT's optima are measured first, as XRIGHT does: the held-out losses after
``--steps`` SFT-only and DPO-only steps (ALRIGHT with lam 0 and 1). With optima 0 it would never train DPO here: the
SFT gap (1 - lam) * CE ~ 1.5 nats always beats lam * DPO's <= ln 2.

Step time is the scheduler callback's own measurement (``cost/train_seconds`` / steps: choice, probe, data pull,
forward, backward, optimizer step); "fit" is the whole ``trainer.fit`` wall time per step (Lightning's loop
included). Runs with another SFT/DPO mix than sequential's are also compared with what sequential's own SFT and DPO
step times predict for that mix. Memory: the largest per-step peak RSS (``src.interleave.cost``) above the RSS just
before the fit, with glibc told to ``mmap`` blocks >= 1 MiB so that an earlier run's freed tensors leave the RSS.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
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

from src.callbacks.interleave_scheduler import InterleaveScheduler  # noqa: E402
from src.datamodules.interleave_streams import InterleaveDataModule  # noqa: E402
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule  # noqa: E402
from src.datamodules.toy.style_pairs import ToyWorldStylePreferenceDataModule  # noqa: E402
from src.interleave.cost import peak_mb, reset_peak  # noqa: E402
from src.interleave.schedules import Alright, MaxRight, Mix, Sequential  # noqa: E402
from src.modules.backbones import tiny_llama  # noqa: E402
from src.modules.interleave import InterleaveModule  # noqa: E402

LAM = 0.5
METHODS = {
    "sequential": lambda: Sequential(lam=LAM),
    "alright (bresenham)": lambda: Alright(lam=LAM, mode="bresenham"),
    "alright (random)": lambda: Alright(lam=LAM, seed=42),
    "maxright": lambda optima: MaxRight(lam=LAM, optima=optima, refresh_every=10),
    "mix": lambda: Mix(lam=LAM),
}
MODEL = dict(hidden_size=128, num_layers=4, num_heads=4)


def fit_once(name: str, sources: tuple, args: argparse.Namespace, schedule=None) -> dict[str, float]:
    L.seed_everything(0, verbose=False)
    gc.collect()
    dm = InterleaveDataModule(*sources)  # fresh streams: every run sees the same data order
    module = InterleaveModule(model=partial(tiny_llama, dm.tokenizer, **MODEL),
                              optimizer=partial(torch.optim.AdamW, lr=1e-4, betas=(0.9, 0.95)))
    schedule = schedule or (METHODS[name](args.optima) if name == "maxright" else METHODS[name]())
    scheduler = InterleaveScheduler(schedule)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        gradient_clip_val=1.0, callbacks=[scheduler])
    reset_peak(torch.device("cpu"))  # VmHWM := the current RSS
    base_mb = peak_mb(torch.device("cpu")) if Path("/proc/self/clear_refs").exists() else float("nan")
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - start
    steps, seconds = scheduler.steps, scheduler.seconds
    return {"step_ms": 1000 * seconds["train"] / args.steps, "fit_ms": 1000 * fit_s / args.steps,
            "sft_steps": steps["sft"], "dpo_steps": steps["dpo"],
            "sft_ms": 1000 * seconds.get("sft", 0.0) / max(steps["sft"], 1),
            "dpo_ms": 1000 * seconds.get("dpo", 0.0) / max(steps["dpo"], 1),
            "probe_ms": 1000 * seconds["probe"] / args.steps, "mem_mb": max(scheduler.peaks.values()) - base_mb,
            "held_out": {k: float(v) for k, v in module.probe_losses(dm.probe_batches()).items()}}


def measure_optima(sources: tuple, args: argparse.Namespace) -> dict[str, float]:
    """``{sft, dpo}``: the held-out losses after ``--steps`` steps of that objective alone (XRIGHT's optima runs)."""
    return {obj: fit_once(obj, sources, args, Alright(lam=lam))["held_out"][obj]
            for obj, lam in (("sft", 0.0), ("dpo", 1.0))}


def table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    """Ratios are paired: each run against the sequential run of the same repeat (minutes apart, similar load)."""
    seq = results["sequential"]
    lines = [
        f"CPU benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), a shared machine. Tiny Llama {MODEL} from scratch, toy-world tasks "
        f"and style pairs, SFT micro-batch 12, 4 pairs (reference: frozen copy), AdamW, lam = {LAM}, {args.steps} "
        f"optimizer steps per run, {args.repeats} interleaved repeats. MAXRIGHT's optima (held-out losses after "
        f"{args.steps} single-objective steps): SFT {args.optima['sft']:.3f}, DPO {args.optima['dpo']:.3f}. "
        f"Medians [min, max] over repeats; the ratios "
        f"pair each run with the sequential run of its repeat. Sequential's own steps: SFT "
        f"{_median(seq, 'sft_ms'):.0f} ms, DPO {_median(seq, 'dpo_ms'):.0f} ms.",
        "",
        "| method | SFT / DPO steps | ms per step | vs sequential | vs sequential at the same SFT/DPO mix | "
        "probe ms per step | fit ms per step | peak RSS above start, MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        raw = [100 * (r["step_ms"] / s["step_ms"] - 1) for r, s in zip(runs, seq)]
        # The same SFT and DPO steps taken at sequential's per-kind speed (Mix: both per step, so 2x the work).
        predicted = [(r["sft_steps"] * s["sft_ms"] + r["dpo_steps"] * s["dpo_ms"]) / args.steps
                     for r, s in zip(runs, seq)]
        mixed = [100 * (r["step_ms"] / p - 1) for r, p in zip(runs, predicted)]
        lines.append(
            f"| {name} | {runs[0]['sft_steps']} / {runs[0]['dpo_steps']} | "
            f"{_spread([r['step_ms'] for r in runs], '.0f')} | {_spread(raw, '+.1f', '%')} | "
            f"{_spread(mixed, '+.1f', '%')} | {_median(runs, 'probe_ms'):.1f} | "
            f"{_median(runs, 'fit_ms'):.0f} | {_median(runs, 'mem_mb'):.0f} |")
    return "\n".join(lines) + "\n"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _spread(values: list[float], fmt: str, unit: str = "") -> str:
    return f"{statistics.median(values):{fmt}}{unit} [{min(values):{fmt}}, {max(values):{fmt}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; more than free cores thrash")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_interleave_cpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if Path("/proc/self/clear_refs").exists():
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB: freed tensors leave the RSS
    sources = (ToyWorldSFTDataModule(num_train=1000, num_val=50, batch_size=12, seed=0),
               ToyWorldStylePreferenceDataModule(num_train=500, num_val=50, batch_size=4, seed=0))
    for source in sources:
        source.setup("fit")
    names = list(METHODS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    fit_once("sequential", sources, argparse.Namespace(steps=4))  # warm-up: allocator, kernels, imports
    args.optima = measure_optima(sources, args)
    print("optima", args.optima, flush=True)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            results[name].append(fit_once(name, sources, args))
            print(repeat, name, results[name][-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table(results, args))
    print(table(results, args))


if __name__ == "__main__":
    main()
