"""Step time and peak memory of DPO with each reference strategy, on the tiny Llama and a larger CPU-sized one.

    python experiments/bench_dpo.py [--device cpu|cuda] [--steps 8] [--batch 8] [--out experiments/results/x.md]

Each (model, strategy) runs in a fresh subprocess, so one run's allocator state cannot leak into the next. A step is
``DPOModule.step`` (policy forward on ``[chosen; rejected]`` + the reference) + backward + AdamW step, on toy-world
pairs. Cases: full fine-tuning with ``copy``, ``precomputed``, and ``none`` (SimPO: the policy-only floor every
reference strategy is compared with); LoRA with ``copy``, ``adapter`` and ``precomputed``.

Memory. CUDA: ``torch.cuda.max_memory_allocated`` (tensors only). CPU: the process's peak resident set size (Linux
``VmHWM``) above the RSS just before the model is built, with glibc told to ``mmap`` every block >= 1 MiB so freed
tensors leave the RSS at once. It therefore counts weights, reference, gradients, optimizer state, activations and
the allocator's small-object heap -- everything the step needs, nothing from the data or the imports.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from any directory

MODELS = {"tiny (h64, 2 layers)": dict(hidden_size=64, num_layers=2, num_heads=4),
          "larger (h512, 8 layers)": dict(hidden_size=512, num_layers=8, num_heads=8)}
CASES = [("full", "none"), ("full", "copy"), ("full", "precomputed"),
         ("lora", "copy"), ("lora", "adapter"), ("lora", "precomputed")]
LORA = {"r": 16, "alpha": 32}  # peft's default Llama targets: q_proj, v_proj


def worker(model_name: str, tuning: str, reference: str, args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
    from src.modules.backbones import tiny_llama
    from src.modules.dpo import DPOModule

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dm = ToyWorldPreferenceDataModule(num_train=args.batch * (args.steps + args.warmup), num_val=8,
                                      batch_size=args.batch, eval_batch_size=args.batch, seed=0)
    dm.setup("fit")
    loader = DataLoader(dm.datasets["train"], batch_size=args.batch, collate_fn=dm.collate_fn())
    batches = [{k: v.to(device) for k, v in batch.items()} for batch in loader]
    loss_type = "simpo" if reference == "none" else "sigmoid"
    module = DPOModule(model=partial(tiny_llama, dm.tokenizer, **MODELS[model_name],
                                     lora=LORA if tuning == "lora" else None),
                       optimizer=partial(torch.optim.AdamW, lr=1e-5), loss_type=loss_type, reference=reference,
                       reference_cache_dir=tempfile.mkdtemp(), average_logps=reference == "none")
    memory = _PeakMemory(device)
    with memory:
        module.configure_model()  # the policy and, for "copy", its frozen reference
        module.to(device)
        precompute = (float("nan"), float("nan"))
        if reference == "precomputed":
            start = _now(device)
            module.reference.prepare(module.model, {"train": dm.datasets["train"].examples}, dm.collate_fn(),
                                     args.batch)
            precompute = _since(start, device)
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
        module.train()
        times = []
        for i, batch in enumerate(batches):
            start = _now(device)
            loss = module.step(batch, "train").loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= args.warmup:
                times.append(_since(start, device))
    policy = sum(p.numel() for p in module.model.parameters())
    return {
        "model": model_name, "tuning": tuning, "reference": reference,
        "step_ms": 1e3 * statistics.median(t[device.type == "cpu"] for t in times),  # CPU time on CPU, else wall
        "wall_ms": 1e3 * min(wall for wall, _ in times), "precompute_s": precompute[device.type == "cpu"],
        "precompute_pairs": len(dm.datasets["train"]), "peak_mib": memory.mib,
        "policy_params": policy, "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "held_params": sum(p.numel() for p in module.parameters()),  # policy + a registered reference copy
        "tokens": int(sum(batches[0][k].sum() for k in ("chosen_attention_mask", "rejected_attention_mask"))),
    }


class _PeakMemory:
    def __init__(self, device):
        self.device, self.mib = device, float("nan")

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            if platform.system() == "Linux":
                ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        import torch

        peak = torch.cuda.max_memory_allocated() if self.device.type == "cuda" else _status_kib("VmHWM") * 1024
        self.mib = (peak - self.base) / 2**20


def _status_kib(field: str) -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1])


def _now(device) -> tuple[float, float]:
    """(wall, CPU) seconds. On a shared CPU the process's own CPU time (user + sys) is the robust measure: other
    processes stretch the wall clock, not the work done. One thread keeps it free of spin-waits between threads."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float], device) -> tuple[float, float]:
    wall, cpu = _now(device)
    return wall - start[0], cpu - start[1]


def table(rows: list[dict], args: argparse.Namespace) -> str:
    cpu = args.device == "cpu"
    lines = [
        "# DPO step cost by reference strategy", "",
        f"`python experiments/bench_dpo.py --device {args.device} --steps {args.steps} --warmup {args.warmup} "
        f"--batch {args.batch} --threads {args.threads}`", "",
        f"- device: {args.device}, torch {__import__('torch').__version__}, {args.threads} thread(s); 1-min load "
        f"average {args.load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (a shared machine)",
        f"- {args.batch} toy-world pairs per step ({rows[0]['tokens']} non-pad tokens over chosen + rejected), "
        f"vocabulary 1024, fp32; a step is the DPO step + backward + AdamW; median of {args.steps} steps after "
        f"{args.warmup} warm-up; every case in a fresh process",
        "- step: " + ("the process's CPU time (user + sys) per step, which other processes on a shared CPU do not "
                      "inflate; `wall min` is the fastest step's wall clock" if cpu else "wall clock per step"),
        "- peak: " + ("peak RSS (`VmHWM`) above the RSS just before the model is built: weights, reference, grads, "
                      "AdamW state, activations (glibc mmaps blocks >= 1 MiB, so freed tensors leave the RSS)"
                      if cpu else "`torch.cuda.max_memory_allocated` above the allocation before the model is built"),
        "- precompute: the one-off no-grad pass over the pairs (reported per batch of the same size, as a fraction "
        "of that case's training step)", "",
        "| model | tuning | reference | params held | trainable | step (ms) | wall min (ms) | step / floor "
        "| peak (MiB) | precompute per batch / step |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        floor = next(r for r in rows if r["model"] == row["model"] and r["reference"] == "none")["step_ms"]
        pre = row["precompute_s"]
        per_batch = "-" if pre != pre else f"{pre * 1e3 / (row['precompute_pairs'] / args.batch) / row['step_ms']:.2f}"
        lines.append(
            f"| {row['model']} | {row['tuning']} | {row['reference']} | {row['held_params'] / 1e6:.2f} M "
            f"| {row['trainable'] / 1e6:.2f} M | {row['step_ms']:.0f} | {row['wall_ms']:.0f} "
            f"| {row['step_ms'] / floor:.2f} | {row['peak_mib']:.0f} | {per_batch} |")
    lines += ["", "floor = full fine-tuning with `reference=none` (SimPO, policy forward/backward only) on the same "
              "model. `params held` counts the policy plus a registered reference copy."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "TUNING", "REFERENCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, args)))
        return
    args.load_start = os.getloadavg()[0]
    rows = []
    for model_name in MODELS:
        for tuning, reference in CASES:
            cmd = [sys.executable, __file__, "--worker", model_name, tuning, reference, "--device", args.device,
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
                   "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
            rows.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:]))
            print(rows[-1], flush=True)
    text = table(rows, args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
