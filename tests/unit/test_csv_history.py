"""The resumable CSV writer: which rows of an existing metrics.csv stay, torn lines, new columns, set-aside files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from src.loggers.csv import HistoryWriter, ResumableCSVLogger, checkpoint_step, read_history

HEADER = "epoch,lr,step,train/loss,val/loss\n"
ROWS = [  # what a run writes (rows numbered by steps done): validation before training at 0, a row per step
    "0,,0,,2.0\n", "0,0.1,1,1.9,\n", "0,0.1,2,1.8,\n",
    "0,0.1,3,1.7,\n", "0,,3,,1.6\n",  # validation after 3 steps, then the checkpoint (global_step 3)
    "0,0.1,4,1.5,\n", "0,0.1,5,1.4,\n",  # past the checkpoint: the resumed run logs these again
]


def rows_of(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def log_dir(tmp_path):
    (tmp_path / "metrics.csv").write_text(HEADER + "".join(ROWS))
    return tmp_path


def test_resume_keeps_rows_before_the_checkpoint_step(log_dir):
    HistoryWriter(str(log_dir), resume_step=3)
    kept = rows_of(log_dir / "metrics.csv")
    assert [r["step"] for r in kept] == ["0", "1", "2", "3", "3"]
    assert kept[-1]["val/loss"] == "1.6"  # the validation that made the checkpoint stays


def test_new_rows_append_and_a_new_column_rewrites_with_the_union_header(log_dir):
    writer = HistoryWriter(str(log_dir), resume_step=3)
    writer.log_metrics({"train/loss": 1.4}, step=4)  # fewer columns than the file: appended under its header
    writer.save()
    writer.log_metrics({"val/loss": 1.3, "val/ppl": 3.7}, step=5)  # a column the file never had
    writer.save()
    rows = rows_of(log_dir / "metrics.csv")
    assert list(rows[0]) == ["epoch", "lr", "step", "train/loss", "val/loss", "val/ppl"]
    assert len(rows) == 7 and rows[0]["val/loss"] == "2.0"  # the history survived the rewrite
    assert [(r["step"], r["train/loss"], r["val/ppl"]) for r in rows[-2:]] == [("4", "1.4", ""), ("5", "", "3.7")]


def test_torn_short_and_long_lines_are_dropped(tmp_path):
    # A kill cuts the last line anywhere: "0,,1,,1.25" to "0,,1,,1.2" has every field but a wrong value. Rows
    # without every field (or with too many: a torn line glued to the next) were not written whole either.
    lines = ["0,,0,,2.0\n", ",0.1,1\n", "0,,10,,2,1.5,\n", "0,,1,,1.2"]
    (tmp_path / "metrics.csv").write_text(HEADER + "".join(lines))
    header, rows = read_history(tmp_path / "metrics.csv")
    assert header == HEADER.strip().split(",")
    assert rows == [{"epoch": "0", "lr": "", "step": "0", "train/loss": "", "val/loss": "2.0"}]


def test_a_fresh_run_sets_the_old_history_aside(log_dir):
    (log_dir / "metrics-1.csv").write_text("older\n")
    HistoryWriter(str(log_dir), resume_step=None)
    assert not (log_dir / "metrics.csv").exists()
    assert (log_dir / "metrics-2.csv").read_text() == HEADER + "".join(ROWS)
    assert (log_dir / "metrics-1.csv").read_text() == "older\n"


def test_a_file_killed_before_its_header_is_replaced(tmp_path):
    (tmp_path / "metrics.csv").write_text("")
    writer = HistoryWriter(str(tmp_path), resume_step=4)
    writer.log_metrics({"train/loss": 1.0}, step=4)
    writer.save()
    assert rows_of(tmp_path / "metrics.csv") == [{"step": "4", "train/loss": "1.0"}]


def test_the_logger_reads_its_resume_step_from_the_checkpoint(tmp_path):
    torch.save({"global_step": 200, "state_dict": {"w": torch.zeros(3)}}, tmp_path / "last.ckpt")
    (tmp_path / "sharded.ckpt").mkdir()
    torch.save({"global_step": 300}, tmp_path / "sharded.ckpt" / "meta.pt")
    assert checkpoint_step(tmp_path / "last.ckpt") == 200
    assert checkpoint_step(tmp_path / "sharded.ckpt") == 300
    logger = ResumableCSVLogger(str(tmp_path), ckpt_path=str(tmp_path / "last.ckpt"))
    assert logger.resume_step == 200 and Path(logger.log_dir) == tmp_path / "csv"
    assert ResumableCSVLogger(str(tmp_path)).resume_step is None
    with pytest.raises(FileNotFoundError, match=r"logger\.csv\.ckpt_path=.*nope\.ckpt"):
        ResumableCSVLogger(str(tmp_path), ckpt_path=str(tmp_path / "nope.ckpt"))


def test_a_checkpoint_writes_the_rows_logged_before_it(tmp_path):
    """A resume keeps only what the file holds, so every row up to a checkpoint must be on disk with it."""
    logger = ResumableCSVLogger(str(tmp_path), flush_logs_every_n_steps=1000)
    logger.log_metrics({"lr-AdamW": 0.1}, step=0)  # what LearningRateMonitor logs: buffered, not yet written
    assert not (tmp_path / "csv" / "metrics.csv").exists()
    logger.after_save_checkpoint(None)
    assert rows_of(tmp_path / "csv" / "metrics.csv") == [{"lr-AdamW": "0.1", "step": "0"}]
