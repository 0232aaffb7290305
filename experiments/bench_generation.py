"""Throughput of the generation engine on the quickstart-size tiny Llama (random weights, nothing trained).

    python experiments/bench_generation.py [--threads 1] [--prompts 128] [--task-prompts 200] [--out FILE]

(a) ``generate_samples`` alone: greedy, ``max_new_tokens`` 48, on toy-world prompts rendered with the chat template,
at batch size 1 and 32 (tokens/s and prompts/s). A random model seldom emits the EOS, so nearly every sample runs to
``max_new_tokens``; the table reports the generated token counts it divides by.
(b) A whole gsm8k-style task through the real task path: ``ToyWorldTask(...).evaluate`` with n samples per prompt at
T=1 -- generation, answer extraction, pass@k, maj@k and best-of-n by the policy's mean log-prob (a second,
teacher-forced pass over every sample). The generation and log-prob shares are timed by wrapping the task's own
``responses`` and ``_policy_scores`` methods.

Each case runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own: weights, tokenizer, imports and the
generation's KV cache and logits. Time is wall clock and process CPU time (user + sys); on a shared machine the CPU
time is the steadier number, since other processes do not inflate it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from any directory
from src.utils.machine import cpu_name  # noqa: E402

MAX_NEW_TOKENS = 48
CASES = ("greedy_b1", "greedy_b32", "task")


def build(threads: int):
    import torch
    from omegaconf import OmegaConf

    from src.datamodules.toy_tokenizer import toy_tokenizer
    from src.modules.backbones import tiny_llama

    torch.set_num_threads(threads)
    size = OmegaConf.load(ROOT / "conf" / "experiment" / "quickstart.yaml").model  # what `train.py --cfg job` shows
    tokenizer = toy_tokenizer(None)
    model = tiny_llama(tokenizer, **OmegaConf.to_container(size)).eval()
    return model, tokenizer, size


def greedy(batch_size: int, args: argparse.Namespace) -> dict:
    from src.eval.engine.hf_engine import Sampling, generate_samples
    from src.eval.engine.prompts import render_prompt
    from src.eval.tasks.toyworld import toy_rows

    model, tok, size = build(args.threads)
    prompts = [(row["id"], render_prompt(tok, row["question"], "chat")) for row in toy_rows(args.prompts)]
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS, batch_size=batch_size)
    generate_samples(model, tok, prompts[:2], sampling)  # warm-up: first-call allocations and lazy inits
    before, clock, cpu = _peak()["peak_rss_mib"], time.perf_counter(), time.process_time()
    out = generate_samples(model, tok, prompts, sampling)
    wall, cpu = time.perf_counter() - clock, time.process_time() - cpu
    samples = [s for group in out.values() for s in group]
    tokens = sum(s.num_tokens for s in samples)
    prompt_tokens = [len(tok(text, add_special_tokens=False)["input_ids"]) for _, text in prompts]
    return {"case": f"(a) greedy, batch {batch_size}", "prompts": len(prompts), "samples": len(samples),
            "new_tokens": tokens, "truncated": sum(s.truncated for s in samples), "wall_s": wall, "cpu_s": cpu,
            "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu, "prompts_per_s": len(prompts) / wall,
            "prompt_tokens": f"{min(prompt_tokens)}-{max(prompt_tokens)}", "model": dict(size), "before_mib": before,
            **_peak()}


def task(args: argparse.Namespace) -> dict:
    from src.eval.engine.hf_engine import Sampling
    from src.eval.tasks.task import EvalContext
    from src.eval.tasks.toyworld import ToyWorldTask

    model, tok, size = build(args.threads)
    sampling = Sampling(n=args.n, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, batch_size=64)
    bench = ToyWorldTask(num_prompts=args.task_prompts, generation=sampling)
    phases = dict.fromkeys(("generate_s", "generate_cpu_s", "logprob_s", "logprob_cpu_s"), 0.0)
    bench.responses = _timed(bench.responses, phases, "generate_s")
    bench._policy_scores = _timed(bench._policy_scores, phases, "logprob_s")
    before, clock, cpu = _peak()["peak_rss_mib"], time.perf_counter(), time.process_time()
    result = bench.evaluate(EvalContext(model, tok, progress=False))
    wall, cpu = time.perf_counter() - clock, time.process_time() - cpu
    tokens = sum(r["num_tokens"] for r in result.samples)
    return {"case": f"(b) ToyWorldTask {args.task_prompts} x {args.n} at T=1, batch 64",
            "prompts": result.metrics["prompts"], "samples": len(result.samples), "new_tokens": tokens,
            "truncated": sum(r["truncated"] for r in result.samples), "wall_s": wall, "cpu_s": cpu,
            "tokens_per_s": tokens / phases["generate_s"], "tokens_per_cpu_s": tokens / phases["generate_cpu_s"],
            "prompts_per_s": result.metrics["prompts"] / wall,
            **phases, "metric_keys": len(result.metrics), "model": dict(size), "before_mib": before, **_peak()}


def _timed(method, phases: dict, key: str):
    def wrapper(*a, **kw):
        clock, cpu = time.perf_counter(), time.process_time()
        try:
            return method(*a, **kw)
        finally:
            phases[key] += time.perf_counter() - clock
            phases[key.replace("_s", "_cpu_s")] += time.process_time() - cpu
    return wrapper


def _peak() -> dict:
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB


def markdown(rows: list[dict], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    import torch
    import transformers

    size = rows[0]["model"]
    command = "python experiments/bench_generation.py " + " ".join(sys.argv[1:])
    lines = ["# Generation engine throughput on CPU", "", f"`{command.strip()}`", "",
             f"- machine: {platform.machine()} {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch thread(s); "
             f"1-min load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end (a shared machine)",
             f"- torch {torch.__version__}, transformers {transformers.__version__}, fp32, HF `generate` with KV cache",
             f"- model: the quickstart tiny Llama with random weights (hidden {size['hidden_size']}, "
             f"{size['num_layers']} layers, {size['num_heads']} heads, vocabulary 1024), toy tokenizer, chat template",
             f"- prompts: toy-world test problems (`toy_rows`), {rows[0]['prompt_tokens']} prompt tokens; "
             f"max_new_tokens {MAX_NEW_TOKENS}; a random model seldom emits EOS, so `truncated` counts the samples "
             f"that ran to the limit",
             "- peak RSS: `ru_maxrss` of the case's own fresh process (imports + weights + generation); `+ run` is its "
             "growth during the timed run (KV cache, logits, scoring) over the peak before it", "",
             "| case | prompts | samples | new tokens | truncated | wall (s) | CPU (s) | tokens/s | tokens/CPU-s "
             "| prompts/s | generate, wall (CPU) s | log-prob, wall (CPU) s | peak RSS (MiB) | + run (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        phases = [f"{r[k]:.1f} ({r[k.replace('_s', '_cpu_s')]:.1f})" if k in r else "-"
                  for k in ("generate_s", "logprob_s")]
        lines.append(f"| {r['case']} | {r['prompts']} | {r['samples']} | {r['new_tokens']} | {r['truncated']} | "
                     f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['tokens_per_s']:.0f} | {r['tokens_per_cpu_s']:.0f} | "
                     f"{r['prompts_per_s']:.2f} | "
                     f"{' | '.join(phases)} | {r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['before_mib']:.0f} |")
    lines += ["", "tokens/s and tokens/CPU-s: generated tokens per wall / CPU second of generation (for (b), of the "
              "`responses` call alone); prompts/s: prompts per wall second of the whole case (for (b), the whole "
              "`evaluate`: generation, answer scoring, pass@k, maj@k and the log-prob pass for best-of-n)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--prompts", type=int, default=128, help="prompts of the greedy cases (a)")
    parser.add_argument("--task-prompts", type=int, default=200, help="prompts of the task case (b)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt of the task case (b)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_generation_cpu.md"))
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        row = task(args) if args.worker == "task" else greedy(int(args.worker.rsplit("b", 1)[1]), args)
        print(json.dumps(row))
        return
    start_load, rows = os.getloadavg()[0], []
    for case in CASES:  # a fresh process per case: its own peak RSS, no allocator state from the previous one
        done = subprocess.run([sys.executable, __file__, "--worker", case] + sys.argv[1:], capture_output=True,
                              text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{case}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    table = markdown(rows, args, (start_load, os.getloadavg()[0]))
    Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
