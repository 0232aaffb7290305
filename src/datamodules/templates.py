"""Prompt templates and chat rendering into (text, trainable) segments.

A segment list is the unit every SFT DataModule produces: the prompt and each response are tokenized separately and
their ids concatenated (see ``encode.py``), so a BPE merge across the prompt/response boundary cannot shift the mask.
"""

from __future__ import annotations

from typing import Any

Segment = tuple[str, bool]  # (text, trained on?)

# Stanford Alpaca (tatsu-lab/stanford_alpaca train.py), the template of the GEM, EMO, convex and SDFT recipes.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def alpaca_prompt(instruction: str, input: str = "") -> str:
    if input and input.strip():
        return ALPACA_PROMPT.format(instruction=instruction, input=input)
    return ALPACA_PROMPT_NO_INPUT.format(instruction=instruction)


def chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[Segment]:
    """Render a conversation with the tokenizer's chat template; only assistant turns (content + end-of-turn) train.

    Each message's text is the difference between renders of growing prefixes, as in the GEM repo's masking; the
    assistant header comes from ``add_generation_prompt=True`` and is masked. Templates whose renders are not
    prefixes of each other (some inject per-turn state) cannot be split this way and raise.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("tokenizer has no chat_template; set data.chat_template or use a template-free DataModule")
    segments: list[Segment] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            header = _render(tokenizer, messages[:i], add_generation_prompt=True)
            segments.append((_suffix(header, done), False))
            done = header
        full = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        segments.append((_suffix(full, done), message["role"] == "assistant"))
        done = full
    return [(text, train) for text, train in segments if text]


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _suffix(full: str, prefix: str) -> str:
    if not full.startswith(prefix):
        raise ValueError("chat template is not prefix-stable: rendering more turns changed earlier text")
    return full[len(prefix):]
