"""Train / validation rows: held out of a single local file, never overlapping, and bad JSON named by line."""

from __future__ import annotations

import json
import logging

import pytest

from src.datamodules.preference import HHPreferenceDataModule, UltraFeedbackPreferenceDataModule
from src.datamodules.sft import AlpacaDataModule, UltraFeedbackSFTDataModule
from src.datamodules.sources import load_rows, row_hashes, train_val_rows
from src.datamodules.wikitext import WikiTextDataModule
from tests.helpers import alpaca_rows, hh_rows, ultrafeedback_pref_rows, ultrafeedback_sft_rows, write_jsonl

# Each DataModule whose default val_split names a hub split, with rows shaped like its data.
HUB_SPLIT_MODULES = [
    (UltraFeedbackSFTDataModule, ultrafeedback_sft_rows, "test_sft"),
    (UltraFeedbackPreferenceDataModule, ultrafeedback_pref_rows, "test_prefs"),
    (HHPreferenceDataModule, hh_rows, "test"),
]


@pytest.mark.parametrize("cls, make_rows, hub_split", HUB_SPLIT_MODULES)
def test_local_file_holds_out_val_size_rows_for_a_hub_split(tmp_path, caplog, cls, make_rows, hub_split):
    path = write_jsonl(tmp_path / "rows.jsonl", make_rows(24))
    dm = cls(path=str(path), val_size=4, seed=3)
    assert dm.val_split == hub_split
    with caplog.at_level(logging.INFO, logger="src.datamodules.sources"):
        dm.setup("fit")
    train, val = dm.rows
    assert (len(train), len(val)) == (20, 4)  # was (24, 24): validation on the training rows
    assert not row_hashes(train) & row_hashes(val)
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 24
    held_out = [r.getMessage() for r in caplog.records if "holding out" in r.getMessage()]
    assert held_out == [(f"data.path={path} is a single local file: holding out 4 of its 24 rows as validation "
                         f"(data.val_size=4, seed 3) in place of split {hub_split!r}")]


def test_the_held_out_rows_are_those_of_val_split_null(tmp_path):
    path = str(write_jsonl(tmp_path / "uf.jsonl", ultrafeedback_sft_rows(24)))
    named = train_val_rows(path, None, "train_sft", "test_sft", val_size=5, seed=7)
    null = train_val_rows(path, None, "train_sft", None, val_size=5, seed=7)
    assert [a.to_list() for a in named] == [b.to_list() for b in null]
    other_seed = train_val_rows(path, None, "train_sft", None, val_size=5, seed=8)
    assert other_seed[1].to_list() != null[1].to_list()


def test_limits_apply_after_the_split(tmp_path):
    path = str(write_jsonl(tmp_path / "a.jsonl", alpaca_rows(24)))
    train, val = train_val_rows(path, None, "train", "test", val_size=6, seed=0, limit=5, val_limit=2)
    full_train, full_val = train_val_rows(path, None, "train", "test", val_size=6, seed=0)
    assert train.to_list() == full_train.to_list()[:5] and val.to_list() == full_val.to_list()[:2]


def test_repeated_rows_in_the_file_do_not_leak_into_validation(tmp_path, caplog):
    rows = alpaca_rows(10)
    path = str(write_jsonl(tmp_path / "a.jsonl", rows + rows[:3]))  # rows 0-2 appear twice
    with caplog.at_level(logging.WARNING, logger="src.datamodules.sources"):
        train, val = train_val_rows(path, None, "train", None, val_size=4, seed=0)
    dropped = len(row_hashes(val) & row_hashes(rows[:3]))  # a held-out repeated row leaves its twin in train
    assert dropped >= 1  # seed 0 holds out at least one of them, so the test sees the drop
    assert not row_hashes(train) & row_hashes(val)
    assert len(train) == 13 - 4 - dropped
    assert f"dropped {dropped} training rows identical to a held-out validation row" in caplog.text


def write_splits(root, train: list[dict], test: list[dict]):
    root.mkdir()
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "test.jsonl", test)
    return root


def test_configured_splits_that_share_rows_raise(tmp_path):
    rows = alpaca_rows(12)
    root = write_splits(tmp_path / "data", rows[:8], rows[5:10])  # rows 5, 6, 7 in both
    message = (f"data.path={root}: 3 of the 5 validation rows (split 'test') are also training rows (split 'train'); "
               "point data.val_split at a held-out split, or set data.val_split=null to hold training rows out "
               "instead (data.val_size=0.05)")
    with pytest.raises(ValueError) as error:
        AlpacaDataModule(path=str(root), val_split="test").setup("fit")
    assert str(error.value) == message
    with pytest.raises(ValueError, match=r"8 of the 8 validation rows \(split 'train'\)"):
        AlpacaDataModule(path=str(root), val_split="train").setup("fit")


def test_disjoint_configured_splits_load_as_they_are(tmp_path):
    rows = alpaca_rows(12)
    root = write_splits(tmp_path / "data", rows[:8], rows[8:])
    dm = AlpacaDataModule(path=str(root), val_split="test", limit=6)
    dm.setup("fit")
    assert [r["instruction"] for r in dm.rows[0]] == [r["instruction"] for r in rows[:6]]
    assert [r["instruction"] for r in dm.rows[1]] == [r["instruction"] for r in rows[8:]]


# --- malformed JSON ---------------------------------------------------------------------------------------------------


def test_bad_jsonl_line_is_named_by_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", alpaca_rows(10))
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace('", "input"', '" "input"')  # line 7 loses a comma
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as error:
        AlpacaDataModule(path=str(path), val_size=2).setup("fit")
    column = lines[6].index('" "input"') + 3
    assert str(error.value) == f"data.path={path}: line 7 is not valid JSON (Expecting ',' delimiter: column {column})"
    assert error.value.__cause__ is None and error.value.__suppress_context__  # one line, no datasets traceback


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(alpaca_rows(1)[0]) + "\n\n[1, 2]\n")
    with pytest.raises(ValueError, match=r"^data\.path=.*a\.jsonl: line 3 is not a JSON object \(got list\)$"):
        load_rows(str(path))


def test_bad_json_array_is_named_by_line_and_column(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(alpaca_rows(3), indent=1).replace('"output"', '"output', 1))
    with pytest.raises(ValueError) as error:
        load_rows(str(path))
    assert str(error.value).startswith(f"data.path={path}: line ")
    assert "is not valid JSON (Expecting ':' delimiter)" in str(error.value)
    bad_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if '"output:' in line)
    assert f": line {bad_line} column " in str(error.value)


# --- WikiText: its local file already holds out a tail; the same text on both sides is refused ----------------------


def test_wikitext_validation_on_the_training_text_is_refused(tmp_path):
    path = tmp_path / "wiki.train.raw"
    path.write_text(" a line .\n" * 20)
    with pytest.raises(ValueError, match=r"data\.val_path=.* expected a file other than data\.path"):
        WikiTextDataModule(path=str(path), val_path=str(path))
    with pytest.raises(ValueError, match=r"data\.val_split='train' .* a split other than data\.train_split"):
        WikiTextDataModule(val_split="train").setup()  # raised before anything is downloaded
