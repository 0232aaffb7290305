"""A short run's ``csv/metrics.csv`` has the throughput columns, at Lightning's logging interval, with sane values."""

from __future__ import annotations

import csv

import pytest

import train
from src.callbacks.throughput import TokensPerSecond
from tests.helpers import TINY, TINY_MODEL, compose_cfg

RUN = TINY + TINY_MODEL + ["++data.num_train=64", "++callbacks.task_accuracy.num_prompts=2", "trainer.max_steps=4",
                           "trainer.val_check_interval=4", "trainer.log_every_n_steps=2", "validate_before_fit=false"]


def train_rows(output_dir) -> list[dict[str, float]]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    return [row for row in rows if "train/tokens_per_sec" in row]


def test_throughput_columns_on_cpu(tmp_path):
    train.train(compose_cfg(RUN, tmp_path))
    rows = train_rows(tmp_path)
    assert [row["step"] for row in rows] == [2, 4]  # every log_every_n_steps=2 of 4 steps, not every step
    for row in rows:
        assert row["train/samples_per_sec"] > 0
        # A sequence of the toy data is some tens of tokens, at most data.max_length.
        assert 1 < row["train/tokens_per_sec"] / row["train/samples_per_sec"] <= 128
        assert 0 < row["train/step_time_sec"] < 60
        assert 0.05 < row["train/peak_memory_gib"] < 64  # this Python process, torch and all
        assert "train/mfu" not in row  # no GPU: no peak to divide by


def test_mfu_column_with_a_known_peak(tmp_path, monkeypatch):
    """The GPU path's arithmetic on CPU, with a made-up peak of 1 TFLOP/s: mfu x peak / tokens per second is the
    FLOPs per token of the batch's length T, so it lies between the values at T = 1 and T = data.max_length."""
    monkeypatch.setattr(TokensPerSecond, "_peak", lambda self, pl_module: 1e12)
    lengths = {}  # global step -> the padded length T of the batch that ended it
    logged = TokensPerSecond.on_train_batch_end

    def spy(self, trainer, pl_module, outputs, batch, batch_idx):
        logged(self, trainer, pl_module, outputs, batch, batch_idx)
        lengths[trainer.global_step] = batch["attention_mask"].shape[-1]

    monkeypatch.setattr(TokensPerSecond, "on_train_batch_end", spy)
    cfg = compose_cfg(RUN, tmp_path)
    train.train(cfg)
    vocab = len(train.instantiate(cfg.data).tokenizer)
    # By hand for TINY_MODEL (d 32, 2 layers, 2 heads of 16, MLP 4d): per layer q, k, v, o 4 d^2 = 4096, gate, up,
    # down 3 x 32 x 128 = 12288, two norms 64; the final norm 32 and the head 32 V. Attention 12 x 2 x 2 x 16 x T.
    n = 2 * (4096 + 12288 + 64) + 32 + 32 * vocab
    rows = train_rows(tmp_path)
    assert len(rows) == 2
    for row in rows:
        per_token = row["train/mfu"] * 1e12 / row["train/tokens_per_sec"]
        assert per_token == pytest.approx(6 * n + 768 * lengths[int(row["step"])], rel=1e-6)  # logged as float32


@pytest.mark.gpu
def test_mfu_and_cuda_memory_on_a_gpu(tmp_path):
    """On a GPU (an unknown one too, with callbacks.throughput.peak_flops): MFU is a fraction, memory the
    allocator's peak (a tiny model: well under 1 GiB)."""
    train.train(compose_cfg(RUN + ["trainer.accelerator=gpu", "callbacks.throughput.peak_flops=1e14"], tmp_path))
    for row in train_rows(tmp_path):
        assert 0 < row["train/mfu"] < 1
        assert 0 < row["train/peak_memory_gib"] < 1
