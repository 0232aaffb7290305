"""A CSV logger that keeps a run's ``metrics.csv`` history across resumes, instead of deleting it.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts ("Previous log files in this directory
will be deleted"), so resuming a run into its own directory loses every row before the checkpoint. This logger
keeps them:

- Resuming (``ckpt_path`` given): the rows up to the checkpoint's step stay; the rows past it are dropped, because
  the resumed run logs them again. Rows are numbered by the optimizer steps done (``StepNumbers``): the rows up to
  a checkpoint at ``global_step`` G are numbered at most G (its own validation is G), and the resumed run's first
  row is G + 1. So "keep ``step <= G``" leaves every (step, metric) once.
- A fresh run into a directory that has a ``metrics.csv``: the old file moves to ``metrics-<n>.csv``.
- A column that appears later rewrites the file with the union header, from the kept rows plus the new ones.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


def checkpoint_step(ckpt_path: str | os.PathLike) -> int:
    """The ``global_step`` a checkpoint resumes from; memory-mapped, so a large checkpoint is not read."""
    path = Path(ckpt_path)
    if path.is_dir():  # a sharded (FSDP) checkpoint keeps the loop state in meta.pt
        path = path / "meta.pt"
    if not path.is_file():
        raise FileNotFoundError(f"logger.csv.ckpt_path={ckpt_path}: no such checkpoint file")
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=False)["global_step"])


def read_history(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and complete rows of a ``metrics.csv``; a last line cut short by a kill is left out."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a torn write: its values may be cut mid-number
    reader = csv.DictReader(text.splitlines())
    # A short row has None values and a long one a None key: neither was written whole.
    rows = [row for row in reader if None not in row and None not in row.values() and row.get("step", "").isdigit()]
    return list(reader.fieldnames or []), rows


def write_history(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def set_aside(path: Path) -> Path:
    """Move ``metrics.csv`` to the first free ``metrics-<n>.csv`` and return the new path."""
    n = 1
    while (moved := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    path.rename(moved)
    return moved


class HistoryWriter(ExperimentWriter):
    """Lightning's writer (hparams.yaml, metrics.csv, union-header rewrites) minus the deletion at start."""

    def __init__(self, log_dir: str, resume_step: int | None = None):
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        # Lightning's hook that deletes metrics.csv. It runs in __init__, before anything is logged.
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self.resume_step is None:
            log.warning("not resuming: the existing %s moved to %s", path, set_aside(path))
            return
        header, rows = read_history(path)
        if "step" not in header:  # killed before its header was written: nothing to keep
            path.unlink()
            return
        kept = [row for row in rows if int(row["step"]) <= self.resume_step]
        write_history(path, header, kept)
        # The file's columns are known columns: a later save appends under them, or rewrites with their union.
        self.metrics_keys = sorted(header)
        log.info("resuming %s at step %d: kept %d rows, dropped %d", path, self.resume_step, len(kept),
                 len(rows) - len(kept))


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` writing ``<save_dir>/<name>/<version>/metrics.csv``; ``ckpt_path`` is the checkpoint the run
    resumes from (null for a fresh run), whose step decides which of the existing rows stay."""

    def __init__(
        self,
        save_dir: str,
        name: str = "csv",
        version: str = "",
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
        ckpt_path: str | None = None,
    ):
        super().__init__(save_dir, name=name, version=version, prefix=prefix,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)
        self.resume_step = checkpoint_step(ckpt_path) if ckpt_path else None

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(self.log_dir, self.resume_step)
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        # The file must hold every row up to a checkpoint (the resume keeps only those), whatever the flush interval.
        self.save()
