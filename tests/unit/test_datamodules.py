"""SFT DataModules on local files: the contract, masking, drop accounting and clear failures."""

import json

import pytest

from src.datamodules.sft import AlpacaDataModule, UltraFeedbackSFTDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.losses.logprobs import IGNORE_INDEX
from tests.helpers import alpaca_rows, ultrafeedback_sft_rows, write_jsonl


def first_batch(dm, split="train"):
    dm.setup("fit")
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    return next(iter(loader))


def test_toyworld_contract_and_masks():
    dm = ToyWorldSFTDataModule(num_train=40, num_val=8, batch_size=4, max_length=96)
    batch = first_batch(dm)
    assert {"input_ids", "attention_mask", "labels"} <= set(batch)
    assert batch["input_ids"].shape == batch["labels"].shape
    text = dm.tokenizer.decode([t for t in batch["labels"][0].tolist() if t != IGNORE_INDEX])
    assert "The answer is" in text and "<|user|>" not in text  # only the response is trained
    assert len(dm.datasets["train"]) == 40 and len(dm.datasets["val"]) == 8


def test_alpaca_local_jsonl_limit_and_val_split(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "a.jsonl", alpaca_rows(30))
    dm = AlpacaDataModule(path=str(path), val_size=5, limit=10, batch_size=2)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 10 and len(dm.datasets["val"]) == 5
    example = dm.datasets["train"][0]
    response = dm.tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX])
    assert response.endswith("<|end|>") and "### Response:" not in response


def test_alpaca_json_array_and_chat_template(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(alpaca_rows(12)))
    dm = AlpacaDataModule(path=str(path), val_size=2, template="chat")
    dm.setup("fit")
    text = dm.tokenizer.decode(dm.datasets["train"][0]["input_ids"])
    assert text.startswith("<|user|>\n")


def test_bad_rows_dropped_with_counts(tmp_path):
    rows = alpaca_rows(10) + [
        {"instruction": "no output"},
        {"instruction": "empty", "input": "", "output": "  "},
        {"instruction": "long " * 400, "input": "", "output": "fine"},
    ]
    dm = AlpacaDataModule(path=str(write_jsonl(tmp_path / "a.jsonl", rows)), val_size=4, max_length=64, seed=0)
    dm.setup("fit")
    dropped = dm.drop_counts["train"] + dm.drop_counts["val"]
    assert dropped == {"missing_field": 1, "empty_response": 1, "prompt_too_long": 1}
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 10


def test_nothing_left_is_a_clear_error(tmp_path):
    rows = [{"instruction": f"q{i}", "output": ""} for i in range(5)]
    dm = AlpacaDataModule(path=str(write_jsonl(tmp_path / "a.jsonl", rows)), val_size=1)
    with pytest.raises(ValueError, match="no usable train rows"):
        dm.setup("fit")


def test_ultrafeedback_multi_turn_trains_on_assistant_turns_only(tmp_path):
    rows = ultrafeedback_sft_rows(6)
    dm = UltraFeedbackSFTDataModule(path=str(write_jsonl(tmp_path / "uf.jsonl", rows)), val_size=2, max_length=256)
    dm.setup("fit")
    assert (len(dm.datasets["train"]), len(dm.datasets["val"])) == (4, 2)  # test_sft: held out of the single file
    multi = dm.encode(rows[0])  # row 0 has two assistant turns
    trained = dm.tokenizer.decode([t for t in multi["labels"] if t != IGNORE_INDEX])
    assert trained == "0 + 1 = 1. The answer is 1.<|end|>\nThe answer is 2.<|end|>\n"


def test_unsupported_file_and_bad_values(tmp_path):
    bad = tmp_path / "a.xlsx"
    bad.write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        AlpacaDataModule(path=str(bad)).setup("fit")
    with pytest.raises(ValueError, match="data.batch_size"):
        AlpacaDataModule(path=str(bad), batch_size=0)
    with pytest.raises(ValueError, match="data.template"):
        AlpacaDataModule(path=str(bad), template="vicuna")


def test_val_from_validates_on_the_other_sources_copy_of_the_same_rows(tmp_path):
    """SDFT trains on a distilled file (same rows, other responses) but validates on the original golds."""
    rows = alpaca_rows(24)
    distilled = [{**row, "output": f"rewritten {i}"} for i, row in enumerate(rows)]
    original, rewritten = write_jsonl(tmp_path / "a.jsonl", rows), write_jsonl(tmp_path / "b.jsonl", distilled)
    plain = AlpacaDataModule(path=str(original), val_size=4)
    sdft = AlpacaDataModule(path=str(rewritten), val_size=4, val_from=str(original))
    assert list(sdft.load_split("val")) == list(plain.load_split("val"))  # the same held-out rows, original golds
    assert all(row["output"].startswith("rewritten") for row in sdft.load_split("train"))
    held_out = {row["instruction"] for row in plain.load_split("val")}
    assert not held_out & {row["instruction"] for row in sdft.load_split("train")}
