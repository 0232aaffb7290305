"""The machinery of ``experiments/gpu_check.py``: run a command in its own process group with a timeout inside one
budget, read a training run's metrics.csv, and render a row of the report's tables."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 3  # tokens/s and MFU leave out the first steps (CUDA context, autotuning, torch.compile)
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK")
Row = dict[str, str]


class Result(NamedTuple):
    ok: bool
    seconds: float
    note: str  # why it failed (exit status and the log's last error line) or did not run
    run_dir: Path


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Runner:
    """Runs one command at a time into ``<out>/runs/<name>`` and ``<out>/logs/<name>.log`` before one deadline."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.deadline = out, time.monotonic() + budget_s
        self.env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
        self.env |= {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def __call__(self, name: str, cmd: list[str], timeout: float) -> Result:
        timeout = min(timeout, self.deadline - time.monotonic())
        if timeout < 20:
            return Result(False, 0.0, "skipped (the time budget was spent)", self.run_dir(name))
        shutil.rmtree(self.run_dir(name), ignore_errors=True)  # a fresh run, not a continued metrics.csv
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with open(log, "w") as f:
            f.write(" ".join(cmd[1:]) + "\n")
            f.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own group: a timeout also ends vLLM's workers
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return Result(False, time.monotonic() - start, f"timed out after {timeout:.0f} s", self.run_dir(name))
        return Result(rc == 0, time.monotonic() - start, "" if rc == 0 else f"exit {rc}: {last_error(log)}",
                      self.run_dir(name))


def last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"Error|error:|Exception", line)]
    return (errors or lines or ["(no output)"])[-1][:200].replace("|", "/")


def row(case: str, result: Result | None, reason: str = "", **cells: str) -> Row:
    """A table row: ``result`` of a command that ran, or ``reason`` (``skipped (...)``, ``fail: ...``)."""
    if result is not None:
        reason = "pass" if result.ok else result.note if result.note.startswith("skipped") else f"fail: {result.note}"
    return {"case": case, "status": reason, "wall (s)": f"{result.seconds:.0f}" if result else "-", **cells}


def train_metrics(run_dir: Path) -> dict[str, float]:
    """Step-1 and final ``train/loss``, median tokens/s and MFU after the warm-up steps, and peak memory."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]  # one per optimizer step (log_every_n_steps=1)
    col = lambda key: [float(r[key]) for r in rows if r.get(key)]
    steady = lambda key: col(key)[WARMUP_STEPS:] or col(key)
    return {"loss1": col("train/loss")[0], "loss": col("train/loss")[-1],
            "tps": statistics.median(steady("train/tokens_per_sec")), "gib": max(col("train/peak_memory_gib")),
            "mfu": statistics.median(steady("train/mfu")) if col("train/mfu") else None}  # MFU: GPU only


def with_metrics(result: Result) -> tuple[Result, dict[str, float] | None]:
    """The run's metrics; a run that exited 0 without readable training rows is marked failed."""
    if not result.ok:
        return result, None
    try:
        return result, train_metrics(result.run_dir)
    except (OSError, LookupError, ValueError) as err:
        return result._replace(ok=False, note=f"no training rows in metrics.csv ({type(err).__name__}: {err})"), None


def speed_cells(m: dict[str, float] | None) -> dict[str, str]:
    if m is None:
        return {}
    return {"tokens/s": f"{m['tps']:,.0f}", "peak GiB": f"{m['gib']:.2f}",
            "MFU": "-" if m["mfu"] is None else f"{m['mfu']:.3f}", "step-1 loss": f"{m['loss1']:.5f}",
            "final loss": f"{m['loss']:.4f}"}


def table(rows: list[Row]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows])
