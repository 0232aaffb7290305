"""What benchmarks and studies share: the machine they ran on, and how they run the real command lines."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# One thread per process: on a shared machine a multi-threaded op stalls whenever a core is busy.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_logged(script: str, overrides: list[str], log: Path, cwd: Path) -> float:
    """``python <script> <overrides>`` in ``cwd`` on one thread, output to ``log``; returns wall seconds (for
    studies that drive ``train.py`` / ``eval.py`` through their real command lines)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, script, *overrides], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, **ONE_THREAD})
    if proc.returncode:
        raise RuntimeError(f"{script} {' '.join(overrides)} failed (rc {proc.returncode}); see {log}")
    return time.time() - start
