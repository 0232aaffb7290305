"""A researcher's own file: data=sft_file / prefs_file detect and render every format, hold out a fraction, and fail
on an empty or unusable file with one line naming it."""

from __future__ import annotations

import ast
import json
import logging
import re

import pytest

from src.datamodules.preference import (
    AutoPreferenceDataModule,
    HHPreferenceDataModule,
    UltraFeedbackPreferenceDataModule,
)
from src.datamodules.sft import AlpacaDataModule, AutoSFTDataModule
from src.datamodules.sources import held_out_count
from src.losses.logprobs import IGNORE_INDEX
from tests.helpers import hh_rows, write_jsonl


def trained(dm, ids, labels) -> str:
    return dm.tokenizer.decode([t for t, label in zip(ids, labels) if label != IGNORE_INDEX])


def head(dm, ids, labels) -> str:
    return dm.tokenizer.decode(ids[: next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)])


def flat_pairs(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "chosen": f"{i} + 1 = {i + 1}. The answer is {i + 1}.",
             "rejected": f"The answer is {i + 7}."} for i in range(n)]


# --- SFT -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, prompt", [
    ("alpaca", "Below is an instruction that describes a task. Write a response that appropriately completes the "
               "request.\n\n### Instruction:\nWhat is 3 + 1?\n\n### Response:"),
    ("chat", "<|user|>\nWhat is 3 + 1?<|end|>\n<|assistant|>\n"),
])
def test_prompt_completion_file(tmp_path, template, prompt):
    rows = [{"prompt": f"What is {i} + 1?", "completion": f"The answer is {i + 1}."} for i in range(6)]
    dm = AutoSFTDataModule(path=str(write_jsonl(tmp_path / "pc.jsonl", rows)), template=template)
    dm.setup("fit")
    ex = dm.encode(rows[3])
    assert head(dm, ex["input_ids"], ex["labels"]) == prompt
    assert trained(dm, ex["input_ids"], ex["labels"]).startswith("The answer is 4.<|end|>")
    assert (len(dm.datasets["train"]), len(dm.datasets["val"])) == (5, 1)


def test_sharegpt_file_trains_every_assistant_turn(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": f"Say {i}."}, {"from": "gpt", "value": f"{i}."},
                               {"from": "human", "value": "Again."}, {"from": "gpt", "value": f"{i} again."}]}
            for i in range(4)]
    dm = AutoSFTDataModule(path=str(write_jsonl(tmp_path / "sg.jsonl", rows)))
    dm.setup("fit")
    ex = dm.encode(rows[2])
    assert trained(dm, ex["input_ids"], ex["labels"]) == "2.<|end|>\n2 again.<|end|>\n"


def test_alpaca_reads_instruction_response_rows_without_settings(tmp_path, caplog):
    rows = [{"instruction": f"Name {i} fruits.", "response": f"I can name {i} fruits."} for i in range(40)]
    path = write_jsonl(tmp_path / "ir.jsonl", rows)
    dm = AlpacaDataModule(path=str(path), seed=1)
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert dm.drop_counts == {"train": {}, "val": {}}
    assert (len(dm.datasets["train"]), len(dm.datasets["val"])) == (38, 2)  # 5% of 40
    ex = dm.datasets["val"][0]
    assert trained(dm, ex["input_ids"], ex["labels"]).startswith("I can name ")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("src.datamodules")]
    assert lines == [  # the held-out line appears for data=alpaca too (it was logged only with a val_split set)
        f"data.path={path}: holding out 2 of its 40 rows as validation (data.val_size=0.05, seed 1)",
        f"data.path={path}: SFT format detected: instruction/response (prompt=instruction, response=response)"]


def test_named_fields_are_used_as_given(tmp_path):
    rows = [{"q": f"Q{i}", "a": f"A{i}", "output": "not this"} for i in range(4)]
    dm = AlpacaDataModule(path=str(write_jsonl(tmp_path / "qa.jsonl", rows)), instruction_field="q",
                          response_field="a", val_size=1)
    dm.setup("fit")
    ex = dm.encode(rows[0])
    assert trained(dm, ex["input_ids"], ex["labels"]) == "A0<|end|>"


# --- preferences -----------------------------------------------------------------------------------------------------


def test_flat_pairs_chat_template(tmp_path, caplog):
    path = write_jsonl(tmp_path / "prefs.jsonl", flat_pairs(6))
    dm = AutoPreferenceDataModule(path=str(path))
    with caplog.at_level(logging.INFO, logger="src.datamodules.preference"):
        dm.setup("fit")
    assert caplog.messages == [f"data.path={path}: preference format detected: flat (prompt=prompt, chosen=chosen, "
                               "rejected=rejected)"]
    ex = dm.encode(flat_pairs(6)[2])
    c_head = head(dm, ex["chosen_input_ids"], ex["chosen_labels"])
    assert c_head == head(dm, ex["rejected_input_ids"], ex["rejected_labels"])
    assert c_head == "<|user|>\nWhat is 2 + 1?<|end|>\n<|assistant|>\n"
    assert trained(dm, ex["chosen_input_ids"], ex["chosen_labels"]) == "2 + 1 = 3. The answer is 3.<|end|>\n"
    assert trained(dm, ex["rejected_input_ids"], ex["rejected_labels"]) == "The answer is 9.<|end|>\n"


def test_flat_pairs_raw_template(tmp_path):
    dm = AutoPreferenceDataModule(path=str(write_jsonl(tmp_path / "p.jsonl", flat_pairs(4))), template="raw")
    ex = dm.encode(flat_pairs(4)[1])
    assert head(dm, ex["chosen_input_ids"], ex["chosen_labels"]) == "What is 1 + 1?"
    assert trained(dm, ex["chosen_input_ids"], ex["chosen_labels"]) == "1 + 1 = 2. The answer is 2.<|end|>"


def test_ultrafeedback_prefs_accepts_a_flat_file(tmp_path):
    """The issue: every flat row used to be dropped as missing_field."""
    dm = UltraFeedbackPreferenceDataModule(path=str(write_jsonl(tmp_path / "flat.jsonl", flat_pairs(20))))
    dm.setup("fit")
    assert dm.drop_counts == {"train": {}, "val": {}}
    assert (len(dm.datasets["train"]), len(dm.datasets["val"])) == (19, 1)


def test_hh_file_through_prefs_file_matches_data_hh(tmp_path):
    path = str(write_jsonl(tmp_path / "hh.jsonl", hh_rows(6)))
    auto, hh = AutoPreferenceDataModule(path=path, template="raw"), HHPreferenceDataModule(path=path)
    auto.setup("fit")
    hh.setup("fit")
    assert auto.format.name == "hh"
    assert auto.datasets["train"].examples == hh.datasets["train"].examples


# --- held-out rows, empty and unusable files -------------------------------------------------------------------------


@pytest.mark.parametrize("val_size, rows, held", [(0.05, 3, 1), (0.05, 40, 2), (0.05, 100, 5), (0.05, 5000, 200),
                                                  (0.5, 10, 5), (4, 10, 4), (4.0, 10, 4), (300, 1000, 300)])
def test_held_out_count(val_size, rows, held):
    assert held_out_count(val_size, rows) == held


@pytest.mark.parametrize("val_size", [0, -0.1, 1.5, -3])
def test_val_size_out_of_range_names_the_key(tmp_path, val_size):
    with pytest.raises(ValueError) as error:
        AutoSFTDataModule(path="x.jsonl", val_size=val_size)
    assert str(error.value) == (f"data.val_size={val_size!r} is out of range: expected a fraction of the rows in "
                                "(0, 1) or a whole number of rows (at least 1)")


@pytest.mark.parametrize("name, text", [("empty.jsonl", ""), ("blank.jsonl", "\n \n"), ("empty.json", "[]"),
                                        ("header.csv", "prompt,chosen,rejected\n")])
@pytest.mark.parametrize("cls", [AutoSFTDataModule, AutoPreferenceDataModule])
def test_empty_file_is_one_line_naming_it(tmp_path, cls, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        cls(path=str(path)).setup("fit")
    assert str(error.value) == (f"data.path={path} has no rows; write at least 2 rows into it (one to validate on; "
                                "JSON Lines: one JSON object per line, see the README's Data section) or point "
                                "data.path at another file")
    assert error.value.__cause__ is None  # no datasets StopIteration chained under it


def test_one_row_file_is_too_small(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", flat_pairs(1))
    with pytest.raises(ValueError) as error:
        AutoPreferenceDataModule(path=str(path)).setup("fit")
    assert str(error.value) == (f"data.path={path} has 1 row(s): too few to hold out 1 for validation "
                                "(data.val_size=0.05) and train on the rest; add rows or lower data.val_size")


def test_file_whose_rows_are_all_dropped_names_it_and_the_counts(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "same", "rejected": "same"} for i in range(4)] + [
        {"prompt": "q", "chosen": " ", "rejected": "x"} for _ in range(2)]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError) as error:
        AutoPreferenceDataModule(path=str(path), val_size=1, seed=0).setup("fit")
    message = str(error.value)
    assert message.startswith(f"AutoPreferenceDataModule: no usable train rows left of data.path={path} after "
                              "filtering (dropped: {")
    counts = ast.literal_eval(message[message.index("{"): message.index("}") + 1])
    assert sum(counts.values()) == 5 and set(counts) == {"identical_responses", "empty_response"}  # 6 rows, 1 held out


def test_a_tokenizer_that_cannot_load_is_one_line_naming_the_key(tmp_path):
    """A directory without tokenizer files (an offline hub id fails the same way, after the hub's retries)."""
    from src.datamodules.tokenizer import load_tokenizer

    name = str(tmp_path / "no-tokenizer-here")
    with pytest.raises(FileNotFoundError, match=rf"^data\.tokenizer={re.escape(name)}: cannot load a tokenizer"):
        load_tokenizer(name)
