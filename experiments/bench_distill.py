"""Throughput of SDFT's distillation stage (``src.sdft.stage.distill``) at SDFT's batch size 1 and batched, on CPU.

    python experiments/bench_distill.py [--threads 1] [--rows 400] [--seed-steps 100] [--seed RUN_DIR] [--out FILE]

The seed model is the quickstart-size toy Llama trained for ``--seed-steps`` steps (``python train.py
trainer.max_steps=N``, the README's quickstart shortened; 0 = random weights), because a trained model ends many
rewrites with EOS as a real seed model does, while a random one runs every sample to ``max_new_tokens``. Each case
distils the first ``--rows`` rows of ``examples/toy_narrow.json`` with ``distill=toy`` exactly as ``distill.py``
composes it (the toy template, its filters, SDFT's sampling T 0.95 / top-p 0.7 / top-k 50) and
``distill.generation.max_new_tokens=64``, changing only ``distill.generation.batch_size``: 1 (SDFT's official
``per_device_eval_batch_size=1``), 16 and 64. ``distill.shard_size`` stays 64, so a batch never spans two shards.

Each case is a fresh process (its own peak RSS, ``ru_maxrss``) with an empty cache; it times the first ``distill``
call (generation, filtering, the dataset, provenance and summary written) and then a second, identical call: the
cache hit (reading the rows, the weights fingerprint, the key digests, the ``is_file`` check). Wall and CPU time are
both reported; on a shared machine CPU time is the steadier number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from any directory
from src.utils.machine import cpu_name  # noqa: E402

MAX_NEW_TOKENS = 64
BATCHES = (1, 16, 64)


def train_seed(steps: int, run_dir: Path, threads: int) -> None:
    args = [sys.executable, str(ROOT / "train.py"), f"trainer.max_steps={steps}", f"cpu_threads={threads}",
            "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"]
    subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)


def case(batch_size: int, args: argparse.Namespace) -> dict:
    import torch
    from hydra import compose, initialize_config_dir

    from src.configs import register_configs
    from src.eval.engine.models import load_model
    from src.modules.backbones import tiny_llama
    from src.sdft import stage
    from src.utils.instantiate import instantiate

    torch.set_num_threads(args.threads)
    cache = tempfile.mkdtemp(prefix="bench_distill_")
    register_configs()
    overrides = ["distill=toy", f"distill.path={ROOT / 'examples' / 'toy_narrow.json'}", f"distill.limit={args.rows}",
                 f"distill.cache_dir={cache}", f"distill.generation.max_new_tokens={MAX_NEW_TOKENS}",
                 f"distill.generation.batch_size={batch_size}", "model_path=unused", "paths.output_dir=unused"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("distill", overrides=overrides)
    distill = instantiate(cfg.distill)
    if args.seed:
        model, tokenizer = load_model(args.seed, device="cpu")
    else:
        from src.datamodules.toy_tokenizer import toy_tokenizer
        tokenizer = toy_tokenizer(None)
        size = {"hidden_size": 96, "num_layers": 3, "num_heads": 4}  # conf/experiment/quickstart.yaml
        model = tiny_llama(tokenizer, **size).eval()
    generate = {"s": 0.0, "cpu_s": 0.0, "samples": []}
    real = stage.generate_samples

    def timed(*a, **kw):  # the generation share of the first call
        clock, cpu = time.perf_counter(), time.process_time()
        out = real(*a, **kw)
        generate["s"] += time.perf_counter() - clock
        generate["cpu_s"] += time.process_time() - cpu
        generate["samples"] += [s[0] for s in out.values()]
        return out

    stage.generate_samples = timed
    before, clock, cpu = _peak(), time.perf_counter(), time.process_time()
    target = distill(model=model, tokenizer=tokenizer)
    wall, cpu = time.perf_counter() - clock, time.process_time() - cpu
    clock, hit_cpu = time.perf_counter(), time.process_time()
    assert distill(model=model, tokenizer=tokenizer) == target
    hit, hit_cpu = time.perf_counter() - clock, time.process_time() - hit_cpu
    summary = json.loads(target.with_name(target.stem + ".summary.json").read_text())
    shutil.rmtree(cache)
    tokens = sum(s.num_tokens for s in generate["samples"])
    return {"batch_size": batch_size, "rows": summary["rows"], "new_tokens": tokens,
            "truncated": sum(s.truncated for s in generate["samples"]), "replaced": summary["replaced"],
            "wall_s": wall, "cpu_s": cpu, "generate_s": generate["s"], "generate_cpu_s": generate["cpu_s"],
            "prompts_per_s": summary["rows"] / wall, "prompts_per_cpu_s": summary["rows"] / cpu,
            "tokens_per_s": tokens / generate["s"], "hit_s": hit, "hit_cpu_s": hit_cpu, "before_mib": before,
            "peak_rss_mib": _peak(), "params": sum(p.numel() for p in model.parameters())}


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def markdown(rows: list[dict], args: argparse.Namespace, loads: tuple[float, float], seed_note: str) -> str:
    import torch
    import transformers

    command = "python experiments/bench_distill.py " + " ".join(a for a in sys.argv[1:])
    lines = ["# SDFT distillation throughput on CPU", "", f"`{command.strip()}`", "",
             f"- machine: {platform.machine()} {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch thread(s); "
             f"1-min load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end (a shared machine)",
             f"- torch {torch.__version__}, transformers {transformers.__version__}, fp32, HF `generate` with KV cache",
             f"- seed model: {seed_note} ({rows[0]['params'] / 1e6:.2f} M parameters, toy tokenizer)",
             f"- data: the first {rows[0]['rows']} rows of `examples/toy_narrow.json`; `distill=toy` (toy template, "
             f"filters empty / truncated / math_answer, sampling T 0.95, top-p 0.7, top-k 50), max_new_tokens "
             f"{MAX_NEW_TOKENS}, shard_size 64; only `distill.generation.batch_size` changes",
             "- first call: an empty cache, so generation + filtering + writing the dataset, provenance and summary; "
             "generate: the `generate_samples` calls inside it; cache hit: a second identical `distill` call",
             "- peak RSS: `ru_maxrss` of the case's own fresh process; `+ run` its growth during the two calls", "",
             "| batch size | rows | new tokens | truncated | replaced | first call, wall (CPU) s "
             "| generate, wall (CPU) s | prompts/s | prompts/CPU-s | tokens/s (generate) | cache hit, wall (CPU) s "
             "| peak RSS (MiB) | + run (MiB) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['batch_size']} | {r['rows']} | {r['new_tokens']} | {r['truncated']} | {r['replaced']} | "
                     f"{r['wall_s']:.1f} ({r['cpu_s']:.1f}) | {r['generate_s']:.1f} ({r['generate_cpu_s']:.1f}) | "
                     f"{r['prompts_per_s']:.1f} | {r['prompts_per_cpu_s']:.1f} | {r['tokens_per_s']:.0f} | "
                     f"{r['hit_s']:.2f} ({r['hit_cpu_s']:.2f}) | {r['peak_rss_mib']:.0f} | "
                     f"{r['peak_rss_mib'] - r['before_mib']:.0f} |")
    base = rows[0]
    lines += ["", "Speed-up over batch 1 (prompts per CPU second): " + ", ".join(
        f"batch {r['batch_size']} {r['prompts_per_cpu_s'] / base['prompts_per_cpu_s']:.1f}x" for r in rows[1:]) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rows", type=int, default=400, help="rows of examples/toy_narrow.json to distil (400: all)")
    parser.add_argument("--seed-steps", type=int, default=100, help="train the seed this many steps; 0: random")
    parser.add_argument("--seed", help="an existing train.py run directory to use as the seed model")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_distill_cpu.md"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(case(args.worker, args)))
        return
    start_load, args.seed_given = os.getloadavg()[0], bool(args.seed)
    seed_note = "the quickstart tiny Llama (hidden 96, 3 layers, 4 heads) with random weights"
    if args.seed:
        seed_note = f"the train.py run {args.seed}"
    elif args.seed_steps:
        args.seed = tempfile.mkdtemp(prefix="bench_distill_seed_")
        clock = time.perf_counter()
        train_seed(args.seed_steps, Path(args.seed), args.threads)
        print(f"seed: {args.seed_steps} steps in {time.perf_counter() - clock:.0f} s", file=sys.stderr)
        seed_note = (f"the quickstart tiny Llama (hidden 96, 3 layers, 4 heads) after `python train.py "
                     f"trainer.max_steps={args.seed_steps}` (CE on toy-world tasks, lr 2e-3)")
    rows = []
    for batch_size in BATCHES:  # a fresh process per case: its own peak RSS and an empty cache
        extra = ["--seed", args.seed] if args.seed else ["--seed-steps", "0"]
        done = subprocess.run([sys.executable, __file__, "--worker", str(batch_size), "--threads", str(args.threads),
                               "--rows", str(args.rows), *extra], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"batch {batch_size}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    if args.seed_steps and not args.seed_given:
        shutil.rmtree(args.seed)
    table = markdown(rows, args, (start_load, os.getloadavg()[0]), seed_note)
    Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
