"""Prompt templates render golden strings; chat rendering trains on assistant turns only."""

import pytest

from src.datamodules.templates import alpaca_prompt, chat_segments


def test_alpaca_prompt_golden():
    assert alpaca_prompt("Say hi.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nSay hi.\n\n### Response:"
    )
    with_input = alpaca_prompt("Add.", "1, 2")
    assert with_input.endswith("### Instruction:\nAdd.\n\n### Input:\n1, 2\n\n### Response:")
    assert alpaca_prompt("Add.", "   ") == alpaca_prompt("Add.")  # blank input = no input block


def test_chat_segments_golden_multi_turn(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1 + 1?"},
        {"role": "assistant", "content": "The answer is 2."},
        {"role": "user", "content": "Times 3?"},
        {"role": "assistant", "content": "The answer is 6."},
    ]
    assert chat_segments(tokenizer, messages) == [
        ("<|system|>\nBe brief.<|end|>\n", False),
        ("<|user|>\n1 + 1?<|end|>\n", False),
        ("<|assistant|>\n", False),
        ("The answer is 2.<|end|>\n", True),
        ("<|user|>\nTimes 3?<|end|>\n", False),
        ("<|assistant|>\n", False),
        ("The answer is 6.<|end|>\n", True),
    ]
    # The pieces add up to the template's own render.
    assert "".join(t for t, _ in chat_segments(tokenizer, messages)) == tokenizer.apply_chat_template(
        messages, tokenize=False)


def test_template_that_is_not_prefix_stable_raises(tokenizer):
    tok = type(tokenizer).from_pretrained(tokenizer.name_or_path) if tokenizer.name_or_path else tokenizer
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="prefix-stable"):
        chat_segments(tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
