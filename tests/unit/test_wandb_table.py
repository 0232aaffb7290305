"""The W&B samples table: one row per generated sample, whatever else samples.jsonl holds."""

from __future__ import annotations

import json

from src.eval.reports.wandb_table import COLUMNS, samples_table


def test_per_sequence_nll_records_stay_out_of_the_samples_table(tmp_path):
    generated = {"task": "toyworld", "id": "add-3", "sample": 0, "prompt": "2 + 1?", "response": "3", "num_tokens": 1,
                 "truncated": False, "answer": "3", "correct": True}
    nll = {"task": "ppl", "id": 0, "sample": 0, "nll": 1.25, "tokens": 9}  # eval=ppl: a sequence, not a sample
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (generated, nll, generated)))
    table = samples_table(path)  # a mixed-type column would raise here
    assert table.columns == list(COLUMNS)
    assert table.data == [[generated.get(c) for c in COLUMNS]] * 2
    assert len(samples_table(path, max_rows=1).data) == 1
