"""Masking, segment concatenation and the truncation policy."""

from src.datamodules.encode import encode_segments, special_prefix
from src.losses.logprobs import IGNORE_INDEX


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
