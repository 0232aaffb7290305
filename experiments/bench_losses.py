"""Forward+backward time and peak memory of the SFT losses, each relative to ``ce_loss`` measured in the same run.

    python experiments/bench_losses.py [--device cpu|cuda] [--tokens 2048] [--vocab 32000 128256]
                                       [--dtypes float32 bfloat16] [--hidden 4096] [--out experiments/results/x.md]

Only the loss is measured: a leaf ``logits [B, T, V]`` tensor goes in, ``d loss / d logits`` comes out; the model is
not part of it. EMO is timed twice: ours (one ``[N, V] @ [V, D]`` matmul plus a gather) and a local transcription of
the official DRSY/EMO form (one-hot ``p~`` and three ``[N, V]``-sized products), both with ``mix="emo2"``, the target
probability removed, and the same frozen cost embedding ``[V, D]`` in the logits dtype (as the official buffer copy
of the LM head is).

``--head`` measures the head as well, plain beside chunked (``--chunk-size``): leaf ``hidden [B, T, D]`` and
``W [V, D]`` go in, ``d loss / d (hidden, W)`` comes out. Plain builds ``logits = hidden W^T`` and runs the loss;
chunked (``src/losses/chunked*.py``) never holds more than a chunk's logits. "ce (official: HF shift-logits)" is
Hugging Face's pre-4.46 form, ``logits[:, :-1].contiguous()`` then ``F.cross_entropy``. "ce cce" is Cut Cross-Entropy
(``module.loss_impl=cce``, ``src/losses/fused_ce.py``; listed when ``cut-cross-entropy`` is installed): its Triton
kernel on CUDA, torch.compile on CPU (compiled in the warm-up round).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script from any directory
from src.losses.ce import (  # noqa: E402
    ce_loss,  # noqa: E402
    chunked_ce_loss,
    fused_ce_loss,
)
from src.losses.chunked import kept_hidden  # noqa: E402
from src.losses.convex import (
    chunked_convex_loss,  # noqa: E402
    convex_loss,  # noqa: E402
)
from src.losses.emo import (
    chunked_emo_loss,  # noqa: E402
    emo_loss,  # noqa: E402
)
from src.losses.gem import (
    chunked_gem_loss,  # noqa: E402
    gem_loss,  # noqa: E402
)
from src.losses.logprobs import sequence_logps  # noqa: E402
from src.losses.sequence_logps import chunked_sequence_logps  # noqa: E402
from src.utils.machine import cpu_name  # noqa: E402

BATCH = 4  # rows; tokens are spread over them
OURS_EMO, OFFICIAL_EMO = "emo2 (ours: 1 matmul + gather)", "emo2 (official: 3 products)"
HAS_CCE = importlib.util.find_spec("cut_cross_entropy") is not None  # the `kernels` extra
CPU_TOKENS, CPU_HIDDEN = 256, 1024  # the CPU defaults: a 2-core CPU needs ~1 s per [256, 128k] @ [128k, 1024] matmul


def official_emo2(logits: torch.Tensor, labels: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """DRSY/EMO ``emo2_fixed`` (gt-probability removed), transcribed: the form our one-matmul version replaces."""
    v = logits.size(-1)
    z, y = logits[:, :-1].contiguous().view(-1, v), labels[:, 1:].contiguous().view(-1)
    mask = (y != -100).to(z.dtype)
    mle = F.cross_entropy(z, y, reduction="none")
    one_hot = F.one_hot(y.masked_fill(y == -100, 0), num_classes=v).to(z.dtype)
    stable_onehot = (one_hot + 1e-15) / torch.linalg.vector_norm(one_hot + 1e-15, ord=1, dim=-1, keepdim=True)
    emb = emb / torch.linalg.vector_norm(emb, ord=2, dim=1, keepdim=True)
    q = torch.log_softmax(z, dim=-1).exp()
    q = q - (q * one_hot).detach()
    emo = 1 - torch.sum((stable_onehot @ emb) * (q @ emb), dim=-1)
    loss = (emo / (mle + 1e-10)).detach() * mle + emo
    return (loss * mask).sum() / (1e-15 + mask.sum())


def loss_cases(emb: torch.Tensor) -> dict:
    """name -> ``f(logits, labels)``; ``ce`` first, it is every ratio's denominator."""
    return {
        "ce": ce_loss,
        "gem linear": lambda x, y: gem_loss(x, y, h="linear"),
        "gem logsigmoid": lambda x, y: gem_loss(x, y, h="logsigmoid"),
        OURS_EMO: lambda x, y: emo_loss(x, y, emb),
        OFFICIAL_EMO: lambda x, y: official_emo2(x, y, emb),
        "convex (token, k=1)": convex_loss,
    }


def official_gem(logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.7, scale: float = 0.01) -> torch.Tensor:
    """liziniu/GEM ``SFTTrainer.gem_loss`` (``h = logsigmoid``), transcribed: the masked ``[N, V]`` logits, then
    ``logits_diff``, the sigmoid weights, ``log_softmax``, ``q = softmax(z / beta)`` and their product,
    each ``[N, V]``."""
    z, y = logits[..., :-1, :].contiguous(), labels[..., 1:].contiguous()
    mask = y != -100
    z, y = z[mask], y[mask]  # (N, V), (N,)
    with torch.no_grad():
        weights = torch.sigmoid(scale * (z - z.gather(-1, y.unsqueeze(-1))))
        q = torch.exp(F.log_softmax(z / beta, dim=-1))
    logprobs = F.log_softmax(z, dim=-1)
    loss = -torch.sum(q * weights * (logprobs.gather(-1, y.unsqueeze(-1)) - logprobs), dim=-1)
    return loss.mean()


def official_convex(logits: torch.Tensor, labels: torch.Tensor, k: float = 1.0, eps: float = 0.1) -> torch.Tensor:
    """ictnlp/Convex-Learning fairseq ``compute_convex_loss`` (token reduction, label smoothing ``eps``), transcribed:
    ``log_softmax`` over the whole ``[B, T-1, V]`` (padding and prompt included), then the gathers and the smoothing
    sum."""
    lprobs = F.log_softmax(logits[:, :-1], dim=-1)
    target = labels[:, 1:]
    non_pad = target.ne(-100)
    length = non_pad.sum(-1)
    tgt = (lprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * non_pad).sum(-1) / length
    prob = torch.exp(tgt * k)
    smooth = -torch.sum((lprobs.sum(-1) * non_pad).sum(-1) * (k * prob.detach()))
    return ((1 - eps) * -torch.sum(prob * length) + eps / lprobs.size(-1) * smooth) / length.sum()


def official_hf_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers < 4.46 ``LlamaForCausalLM``: shift the logits (a contiguous ``[B, T-1, V]`` copy), then CE."""
    z, y = logits[:, :-1].contiguous(), labels[:, 1:].contiguous()
    return F.cross_entropy(z.view(-1, z.size(-1)).float(), y.view(-1))


def head_cases(chunk: int, cost: torch.Tensor) -> dict:
    """name -> ``f((hidden, W), labels)``; each loss plain (full logits) and chunked, ``ce`` plain first.

    ``cost [V, D]``: EMO's cost embedding, a frozen copy of the head (``cost_embedding=fixed``)."""

    def plain(loss):
        return lambda x, y: loss(x[0] @ x[1].T, y)  # (B, T, V) logits, then the loss

    def kept(loss):
        def f(x, y):
            h, t, _ = kept_hidden(x[0], y)
            return loss(h, x[1], t)
        return f

    def seq_sum(logps):
        return logps.sum()  # a scalar to differentiate; its gradient per sequence is 1

    return {
        "ce": plain(ce_loss),
        "ce (official: HF shift-logits)": plain(official_hf_ce),
        "ce chunked": kept(lambda h, w, t: chunked_ce_loss(h, w, t, chunk_size=chunk)),
        **({"ce cce": kept(lambda h, w, t: fused_ce_loss(h, w, t, impl="cce"))} if HAS_CCE else {}),
        "gem logsigmoid": plain(lambda z, y: gem_loss(z, y, h="logsigmoid")),
        "gem logsigmoid (official)": plain(official_gem),
        "gem logsigmoid chunked": kept(lambda h, w, t: chunked_gem_loss(h, w, t, h="logsigmoid", chunk_size=chunk)),
        "seq logps (DPO)": plain(lambda z, y: seq_sum(sequence_logps(z, y))),
        "seq logps (DPO) chunked": lambda x, y: seq_sum(chunked_sequence_logps(x[0], y, x[1], chunk_size=chunk)),
        "convex (token, k=1, eps=0.1)": plain(lambda z, y: convex_loss(z, y, label_smoothing=0.1)),
        "convex (token, k=1, eps=0.1) (official)": plain(official_convex),
        "convex (token, k=1, eps=0.1) chunked":
            lambda x, y: chunked_convex_loss(x[0], y, x[1], label_smoothing=0.1, chunk_size=chunk),
        OFFICIAL_EMO: plain(lambda z, y: official_emo2(z, y, cost)),
        OURS_EMO: plain(lambda z, y: emo_loss(z, y, cost)),
        "emo2 chunked": kept(lambda h, w, t: chunked_emo_loss(h, w, t, cost, chunk_size=chunk)),
    }


class PeakMemory:
    """Peak extra memory while the block runs, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` above the allocation at entry (tensors only).
    CPU: peak resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) above the RSS at entry.
    glibc is told to ``mmap`` every block >= 1 MiB (``mallopt``), so freed tensors leave the RSS at once and the
    peak tracks the live tensors plus the allocator's small-object heap.
    """

    def __init__(self, device: torch.device):
        self.device, self.mib = device, float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _proc_status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _proc_status_kib("VmHWM") * 1024
        self.mib = (peak - self.base) / 2**20


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _mmap_large_blocks() -> None:
    if platform.system() == "Linux":
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB, fixed (no dynamic growth)


def fwd_bwd(fn, logits, labels: torch.Tensor) -> None:
    loss = fn(logits, labels)
    torch.autograd.grad(loss, logits)  # the gradient is freed on return, like a backward into a freed graph


def measure(cases: dict, logits, labels, reps: int, warmup: int) -> dict[str, tuple[float, float]]:
    """name -> ``(median ms, peak MiB)`` of forward+backward.

    The reps are interleaved (every case once per round), so a change in machine load hits all cases alike and the
    ratios to CE stay fair; memory comes from one extra run per case after the timed rounds.
    """
    first = logits if isinstance(logits, torch.Tensor) else logits[0]  # (hidden, W) with --head
    sync = torch.cuda.synchronize if first.is_cuda else (lambda: None)
    for _ in range(warmup):
        for fn in cases.values():
            fwd_bwd(fn, logits, labels)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            sync()
            start = time.perf_counter()
            fwd_bwd(fn, logits, labels)
            sync()
            times[name].append(1e3 * (time.perf_counter() - start))
    out = {}
    for name, fn in cases.items():
        with PeakMemory(first.device) as mem:
            fwd_bwd(fn, logits, labels)
        out[name] = (statistics.median(times[name]), mem.mib)
    return out


def make_inputs(tokens: int, vocab: int, hidden: int, dtype, device, prompt_frac: float, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    t = tokens // BATCH + 1  # the shift drops one position per row
    logits = (3 * torch.randn(BATCH, t, vocab, generator=g)).to(device, dtype).requires_grad_()
    labels = torch.randint(0, vocab, (BATCH, t), generator=g)
    labels[:, : 1 + int(prompt_frac * (t - 1))] = -100  # position 0 is never a target; the prompt is masked
    emb = torch.randn(vocab, hidden, generator=g).to(device, dtype)
    return logits, labels.to(device), emb


def run_head(args) -> list[dict]:
    """The ``--head`` table: plain and chunked losses from ``(hidden, W)``, float32 (the chunked path's fp32 logits)."""
    device, rows = torch.device(args.device), []
    for vocab in args.vocab:
        g = torch.Generator(device="cpu").manual_seed(0)
        t = args.tokens // BATCH + 1
        hidden = torch.randn(BATCH, t, args.hidden, generator=g).to(device).requires_grad_()
        weight = (torch.randn(vocab, args.hidden, generator=g) / args.hidden**0.5).to(device).requires_grad_()
        labels = torch.randint(0, vocab, (BATCH, t), generator=g)
        labels[:, : 1 + int(args.prompt_frac * (t - 1))] = -100
        cost = weight.detach().clone()  # an input like W: allocated before, not counted
        cases = head_cases(args.chunk_size, cost)
        if args.cases:  # ce stays: every ratio's denominator
            cases = {k: f for k, f in cases.items() if k == "ce" or any(c in k for c in args.cases)}
        results = measure(cases, (hidden, weight), labels.to(device), args.reps, args.warmup)
        for name, (ms, mib) in results.items():
            rows.append(dict(loss=name, vocab=vocab, dtype="float32", ms=ms, mib=mib, note=""))
            print(f"{vocab:>7} {name:<40} {ms:9.1f} ms {mib:9.1f} MiB", flush=True)
        del hidden, weight, cost
    return rows


def run(args) -> list[dict]:
    device = torch.device(args.device)
    rows = []
    for vocab in args.vocab:
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            logits, labels, emb = make_inputs(args.tokens, vocab, args.hidden, dtype, device, args.prompt_frac)
            cases, notes = loss_cases(emb), {}
            if dtype != torch.float32:
                notes[OURS_EMO] = "peak includes the fp32 copy of the half-precision [V, D] embedding"
            if device.type == "cpu" and dtype != torch.float32:
                notes[OFFICIAL_EMO] = cases.pop(OFFICIAL_EMO) and "skipped: no fast half-precision GEMM on this CPU"
            results = measure(cases, logits, labels, args.reps, args.warmup)
            for name in loss_cases(emb):
                ms, mib = results.get(name, (float("nan"), float("nan")))
                rows.append(dict(loss=name, vocab=vocab, dtype=dtype_name, ms=ms, mib=mib, note=notes.get(name, "")))
                print(f"{vocab:>7} {dtype_name:>9} {name:<32} {ms:9.1f} ms {mib:9.1f} MiB", flush=True)
            del logits, labels, emb
    return rows


def to_markdown(rows: list[dict], args) -> str:
    device = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    cpu_defaults = args.device == "cpu" and (args.tokens, args.hidden) == (CPU_TOKENS, CPU_HIDDEN)
    head = getattr(args, "head", False)
    lines = [
        "# Loss forward+backward cost relative to cross-entropy" + (", LM head included" if head else ""),
        "",
        f"`python experiments/bench_losses.py {' '.join(sys.argv[1:])}`",
        "",
        f"- device: {args.device} ({device}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"1-min load average {args.load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        "(other processes shared the CPU when it exceeds the thread count)",
        f"- {args.tokens} target tokens ({BATCH} rows), prompt fraction masked {args.prompt_frac}, "
        f"EMO cost embedding [V, {args.hidden}] in the logits dtype; median of {args.reps} runs after {args.warmup} "
        "warm-up" + (" (reduced CPU defaults; the CUDA defaults are 4096 tokens and D=4096)" if cpu_defaults else ""),
        (f"- time: forward + backward of the LM head and the loss, from leaf hidden [B, T, {args.hidden}] and "
         f"W [V, {args.hidden}] to d loss / d (hidden, W); chunked: {args.chunk_size} tokens per chunk"
         if head else "- time: forward + backward of the loss alone, from leaf logits to d loss / d logits"),
        "- peak: " + (PeakMemory.__doc__.split("\n\n")[1].strip().replace("\n    ", " ")),
        "  (the inputs" + (", hidden and W," if head else " logits and embedding") + " are allocated before and are "
        "not counted" + ("; the gradients d hidden and d W are" if head else "") + ")",
        "",
        "| V | dtype | loss | time (ms) | time / CE | peak extra (MiB) | peak / CE | note |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ce = next(c for c in rows if c["loss"] == "ce" and c["vocab"] == r["vocab"] and c["dtype"] == r["dtype"])
        lines.append(
            f"| {r['vocab']} | {r['dtype']} | {r['loss']} | {r['ms']:.1f} | {_ratio(r['ms'], ce['ms'])} "
            f"| {r['mib']:.0f} | {_ratio(r['mib'], ce['mib'])} | {r['note']} |"
        )
    return "\n".join(lines).replace("| nan |", "| - |") + "\n"


def _ratio(x: float, ce: float) -> str:
    return f"{x / ce:.2f}" if ce > 0 and x == x else "-"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--tokens", type=int, help=f"target tokens (default: 4096 on cuda, {CPU_TOKENS} on cpu)")
    p.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16", "float16"])
    p.add_argument("--hidden", type=int, help=f"EMO embedding width D (default: 4096 on cuda, {CPU_HIDDEN} on cpu)")
    p.add_argument("--prompt-frac", type=float, default=0.0, help="fraction of each row masked with -100")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--head", action="store_true", help="include the LM head: plain vs chunked losses")
    p.add_argument("--chunk-size", type=int, default=1024, help="tokens per chunk of the chunked losses (--head)")
    p.add_argument("--cases", nargs="*", default=None, help="only the losses whose name contains one of these (--head)")
    p.add_argument("--out", type=Path, default=Path("experiments/results/bench_losses.md"))
    args = p.parse_args(argv)
    on_cpu = args.device == "cpu"
    args.tokens = args.tokens or (CPU_TOKENS if on_cpu else 4096)
    args.hidden = args.hidden or (CPU_HIDDEN if on_cpu else 4096)
    return args


def main() -> None:
    args = parse_args()
    args.load_start = os.getloadavg()[0]
    _mmap_large_blocks()
    torch.set_grad_enabled(True)
    table = to_markdown(run_head(args) if args.head else run(args), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
