"""``limit=N``: a seeded random subset of a task's rows, not its head, for generated, file and DataModule rows."""

from __future__ import annotations

import logging

from datasets import Dataset

from src.eval.tasks.inputs import random_subset
from src.eval.tasks.task import EvalContext
from src.eval.tasks.toyworld import ToyWorldTask


def test_the_subset_is_seeded_in_order_and_not_the_head():
    rows = list(range(200))
    first = random_subset(rows, 32, 0, "t")
    assert first == random_subset(rows, 32, 0, "t")  # deterministic
    assert first == sorted(first) and len(set(first)) == 32 and set(first) <= set(rows)
    assert first != rows[:32]
    assert random_subset(rows, 32, 1, "t") != first  # another seed, other rows


def test_a_larger_limit_keeps_the_smaller_ones_rows():
    rows = list(range(50))
    assert set(random_subset(rows, 10, 3, "t")) <= set(random_subset(rows, 20, 3, "t"))


def test_a_limit_at_or_above_the_size_covers_every_row_and_none_is_everything():
    rows = list(range(7))
    assert random_subset(rows, 7, 0, "t") == rows and random_subset(rows, 100, 0, "t") == rows
    assert random_subset(rows, None, 0, "t") == rows


def test_a_dataset_is_subset_like_a_list():
    rows = Dataset.from_list([{"text": str(i)} for i in range(40)])
    picked = random_subset(rows, 5, 0, "t")
    assert isinstance(picked, Dataset)
    assert [int(r["text"]) for r in picked] == random_subset(list(range(40)), 5, 0, "t")


def test_one_info_line_names_the_subset(caplog):
    with caplog.at_level(logging.INFO, logger="src.eval.tasks.inputs"):
        random_subset(list(range(200)), 32, 0, "gsm8k")
        random_subset(list(range(200)), 32, 0, "gsm8k")  # the validation callback's next validation: said once
    assert [r.getMessage() for r in caplog.records] == [
        "gsm8k: limit=32: a random subset of 32 of 200 rows (limit_seed=0)"]


def test_the_toy_task_draws_its_limit_from_all_its_problems():
    task = ToyWorldTask(num_prompts=200)
    ctx = EvalContext(limit=8, limit_seed=0)
    every = task.source_rows(ctx)
    assert len(every) == 200  # the limit no longer shrinks the generated set to its head
    picked = [row["id"] for row in random_subset(every, ctx.limit, ctx.limit_seed, task.name)]
    assert picked != [str(i) for i in range(8)] and len(picked) == 8
