"""Masking, segment concatenation and the truncation policy."""

import pytest

from src.datamodules.encode import encode_segments, special_prefix
from src.datamodules.preference import UltraFeedbackPreferenceDataModule
from src.datamodules.sft import AlpacaDataModule
from src.datamodules.templates import alpaca_prompt, chat_segments
from src.losses.logprobs import IGNORE_INDEX
from tests.helpers import alpaca_rows, llama_style_tokenizer, ultrafeedback_pref_rows, write_jsonl


def test_prompt_masked_response_trained(tokenizer):
    out = encode_segments(tokenizer, [("Question: 2 + 2?", False), ("The answer is 4.", True)], max_length=64)
    prompt_ids = tokenizer("Question: 2 + 2?", add_special_tokens=False)["input_ids"]
    response_ids = tokenizer("The answer is 4.", add_special_tokens=False)["input_ids"]
    assert out["input_ids"] == prompt_ids + response_ids
    assert out["labels"] == [IGNORE_INDEX] * len(prompt_ids) + response_ids


def test_boundary_merge_cannot_shift_the_mask(tokenizer):
    # Tokenized jointly, "ab" + "c" could merge across the boundary; separately, the mask edge is exact.
    prompt, response = "The answer is", " 4."
    out = encode_segments(tokenizer, [(prompt, False), (response, True)], max_length=64)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert all(label == IGNORE_INDEX for label in out["labels"][:n_prompt])
    assert tokenizer.decode([t for t in out["labels"] if t != IGNORE_INDEX]) == response


def test_prefix_ids_are_masked(tokenizer):
    out = encode_segments(tokenizer, [("Q", False), ("A", True)], max_length=16, prefix_ids=[tokenizer.bos_token_id])
    assert out["input_ids"][0] == tokenizer.bos_token_id and out["labels"][0] == IGNORE_INDEX


def test_truncation_cuts_response_on_the_right(tokenizer):
    prompt = "Add three and four."
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    out = encode_segments(tokenizer, [(prompt, False), ("3 + 4 = 7. The answer is 7.", True)], max_length=n_prompt + 2)
    assert len(out["input_ids"]) == n_prompt + 2
    assert sum(label != IGNORE_INDEX for label in out["labels"]) == 2


def test_prompt_too_long_and_empty_response_are_drop_reasons(tokenizer):
    long_prompt = "word " * 50
    assert encode_segments(tokenizer, [(long_prompt, False), ("ok", True)], max_length=10) == "prompt_too_long"
    assert encode_segments(tokenizer, [("Q", False), ("   ", True)], max_length=10) == "empty_response"
    assert encode_segments(tokenizer, [("Q", False)], max_length=10) == "empty_response"


def test_special_prefix_of_toy_tokenizer_is_empty(tokenizer):
    assert special_prefix(tokenizer) == []


# --- BOS: a Llama-style tokenizer adds one, and its chat template may render one too -------------------------------


@pytest.fixture(scope="module")
def llama(tokenizer):
    return llama_style_tokenizer(tokenizer)


def test_chat_template_with_bos_token_encodes_one_bos(llama):
    bos = llama.bos_token_id
    assert special_prefix(llama) == [bos] and llama("x")["input_ids"][0] == bos
    segments = chat_segments(llama, [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2."}])
    assert segments[0][0].startswith("<s><|user|>")  # the template's own BOS
    out = encode_segments(llama, segments, max_length=64, prefix_ids=special_prefix(llama))
    assert out["input_ids"][0] == bos and out["input_ids"].count(bos) == 1
    assert out["input_ids"] == llama(llama.apply_chat_template(
        [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2."}], tokenize=False),
        add_special_tokens=False)["input_ids"]


def test_template_without_bos_still_gets_the_tokenizer_prefix(llama):
    out = encode_segments(llama, [(alpaca_prompt("Say hi."), False), ("hi", True)], max_length=128,
                          prefix_ids=special_prefix(llama))
    assert out["input_ids"][0] == llama.bos_token_id and out["input_ids"].count(llama.bos_token_id) == 1
    assert out["labels"][0] == IGNORE_INDEX


@pytest.mark.parametrize("template, starts", [("chat", "<s><|user|>"), ("alpaca", "<s>Below is")])
def test_datamodules_with_a_llama_tokenizer_start_with_one_bos(tmp_path, llama, template, starts):
    llama.save_pretrained(tmp_path / "tok")
    path = write_jsonl(tmp_path / "a.jsonl", alpaca_rows(8))
    dm = AlpacaDataModule(path=str(path), tokenizer=str(tmp_path / "tok"), template=template, val_size=2)
    dm.setup("fit")
    for ex in dm.datasets["train"].examples + dm.datasets["val"].examples:
        assert ex["input_ids"].count(llama.bos_token_id) == 1
        assert dm.tokenizer.decode(ex["input_ids"]).startswith(starts)


def test_preference_pairs_with_a_llama_tokenizer_start_with_one_bos(tmp_path, llama):
    llama.save_pretrained(tmp_path / "tok")
    path = write_jsonl(tmp_path / "uf.jsonl", ultrafeedback_pref_rows(6))
    dm = UltraFeedbackPreferenceDataModule(path=str(path), tokenizer=str(tmp_path / "tok"), val_size=2)
    dm.setup("fit")
    for ex in dm.datasets["train"].examples:
        for side in ("chosen", "rejected"):
            assert ex[f"{side}_input_ids"][:2] == [llama.bos_token_id, llama.convert_tokens_to_ids("<|user|>")]
