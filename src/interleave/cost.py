"""Peak memory of one optimizer step, so each objective's cost can be logged (XRIGHT's "GPU utilisation" bars).

CUDA: ``torch.cuda.max_memory_allocated`` (tensors only), reset at the start of the step. CPU (Linux): the peak
resident set size ``VmHWM``, reset by writing ``5`` to ``/proc/self/clear_refs``; where that is not allowed the
value is the process's lifetime peak (``ru_maxrss``), which only ever grows.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # no procfs or not permitted: peak_mb falls back to the lifetime peak


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock reading covers the work it claims to."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
