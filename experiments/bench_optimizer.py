"""AdamW's step: torch's per-parameter loop vs ``foreach`` vs ``fused``, on the parameters of a Llama from config.

    python experiments/bench_optimizer.py [--hidden 512] [--layers 8] [--steps 20] [--threads 1] [--device cpu]

One process, one model's parameter shapes with random gradients; each implementation gets a fresh copy of the same
parameters and gradients, and the three alternate step by step (A B C A B C ...), so machine load drifts onto all
alike. Reports the median step time and the max abs difference of the parameters after the run against the loop.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.datamodules.tokenizer import load_tokenizer  # noqa: E402
from src.modules.backbones import tiny_llama  # noqa: E402

KINDS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer("toy")
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(args.vocab - len(tokenizer))])  # a real-size vocabulary
    model = tiny_llama(tokenizer, hidden_size=args.hidden, num_layers=args.layers, num_heads=8).to(args.device)
    base = [p.detach().clone() for p in model.parameters()]
    grads = [torch.randn_like(p) * 1e-3 for p in base]
    runs = {}
    for kind, flags in KINDS.items():
        params = [torch.nn.Parameter(p.clone()) for p in base]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        runs[kind] = (params, torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **flags), [])
    for _ in range(args.steps + 2):  # the first two steps (state allocation) are not timed
        for _params, optimizer, times in runs.values():
            sync(args.device)
            start = time.perf_counter()
            optimizer.step()
            sync(args.device)
            times.append(time.perf_counter() - start)
    reference = runs["loop"][0]
    n = sum(p.numel() for p in base)
    print(f"AdamW step, {n / 1e6:.1f}M fp32 parameters (Llama hidden {args.hidden}, {args.layers} layers, vocab "
          f"{args.vocab}), {args.device}, {args.threads} thread(s), torch {torch.__version__}, {platform.machine()}; "
          f"median of {args.steps} alternating steps.\n")
    print("| implementation | ms per step | vs loop | max abs diff vs loop |")
    print("|---|---:|---:|---:|")
    loop_ms = statistics.median(runs["loop"][2][2:]) * 1e3
    for kind, (params, _, times) in runs.items():
        ms = statistics.median(times[2:]) * 1e3
        diff = max(float((p - q).detach().abs().max()) for p, q in zip(params, reference))
        print(f"| {kind} | {ms:.1f} | {ms / loop_ms:.2f}x | {diff:.1e} |")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
