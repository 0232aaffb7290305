"""One row of a detected format (``formats.py``) in a common shape, or the reason to drop it: pure functions.

SFT rows become a :class:`Turn` (prompt, optional context, response) or a message list; preference rows become
:class:`PairParts`: a prompt and two replies, all strings (the flat form, rendered as they are or as one chat turn)
or all message lists. Drop reasons: ``missing_field``, ``malformed_message``, ``empty_response``,
``identical_responses``, ``no_shared_prompt`` / ``malformed_pair`` (see :func:`split_shared_prompt`) and
``malformed_transcript`` (HH).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from src.datamodules.formats import Format
from src.datamodules.hh import parse_hh_transcript

Messages = list[dict[str, str]]
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


class Turn(NamedTuple):
    prompt: str
    context: str  # Alpaca's ``input``; "" when there is none
    response: str


class PairParts(NamedTuple):
    prompt: str | Messages
    chosen: str | Messages
    rejected: str | Messages


def sft_example(row: dict[str, Any], fmt: Format) -> Turn | Messages | str:
    if "messages" in fmt.fields:
        messages = row.get(fmt.fields["messages"])
        if not isinstance(messages, list) or not messages:
            return "missing_field"
        if fmt.name == "sharegpt":
            messages = from_sharegpt(messages)
        if isinstance(messages, str) or not well_formed(messages):
            return "malformed_message"
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            return "empty_response"
        return messages
    prompt, response = row.get(fmt.fields["prompt"]), row.get(fmt.fields["response"])
    context = row.get(fmt.fields["input"]) if "input" in fmt.fields else None
    if not isinstance(prompt, str) or not isinstance(response, str) or not isinstance(context or "", str):
        return "missing_field"
    if not response.strip():
        return "empty_response"
    return Turn(prompt, context or "", response)


def from_sharegpt(turns: list[Any]) -> Messages | str:
    """ShareGPT ``{"from", "value"}`` turns as ``{"role", "content"}`` messages (``malformed_message`` if unknown)."""
    if any(not isinstance(t, dict) or SHAREGPT_ROLES.get(t.get("from")) is None for t in turns):
        return "malformed_message"
    return [{"role": SHAREGPT_ROLES[t["from"]], "content": t.get("value")} for t in turns]


def well_formed(messages: list[Any]) -> bool:
    return all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
               for m in messages)


def preference_example(row: dict[str, Any], fmt: Format) -> PairParts | str:
    chosen, rejected = row.get(fmt.fields["chosen"]), row.get(fmt.fields["rejected"])
    prompt = row.get(fmt.fields["prompt"]) if "prompt" in fmt.fields else None
    if fmt.name == "hh":
        return _hh_pair(chosen, rejected)
    if isinstance(chosen, str) and isinstance(rejected, str) and isinstance(prompt, str):  # flat
        if not chosen.strip() or not rejected.strip():
            return "empty_response"
        return PairParts(prompt, chosen, rejected) if chosen != rejected else "identical_responses"
    if isinstance(chosen, str) and isinstance(rejected, str) and isinstance(prompt, list):  # message prompt
        chosen, rejected = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        return "missing_field"
    if not well_formed(chosen + rejected):
        return "malformed_message"
    if chosen and rejected and chosen[0]["role"] == "assistant" == rejected[0]["role"]:  # replies only
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list):
            return "missing_field"
        if not well_formed(prompt):
            return "malformed_message"
        chosen, rejected = prompt + chosen, prompt + rejected
    split = split_shared_prompt(chosen, rejected)
    return split if isinstance(split, str) else PairParts(*split)


def _hh_pair(chosen: Any, rejected: Any) -> PairParts | str:
    chosen, rejected = parse_hh_transcript(chosen), parse_hh_transcript(rejected)
    if isinstance(chosen, str) or isinstance(rejected, str):
        return chosen if isinstance(chosen, str) else rejected
    split = split_shared_prompt(chosen, rejected)
    if isinstance(split, str):
        return split
    if len(split[1]) != 1 or len(split[2]) != 1:
        return "malformed_pair"  # HH pairs differ in the final assistant turn only
    return PairParts(*split)


def split_shared_prompt(chosen: Messages, rejected: Messages) -> tuple[Messages, Messages, Messages] | str:
    """``(prompt, chosen reply, rejected reply)``: the prompt is the longest shared prefix of the two conversations;
    each reply must start with an assistant turn and have non-blank assistant content."""
    n = 0
    while n < min(len(chosen), len(rejected)) and _same(chosen[n], rejected[n]):
        n += 1
    prompt, chosen_reply, rejected_reply = chosen[:n], chosen[n:], rejected[n:]
    if not chosen_reply and not rejected_reply:
        return "identical_responses"
    if not prompt:
        return "no_shared_prompt"
    if not chosen_reply or not rejected_reply or {chosen_reply[0]["role"], rejected_reply[0]["role"]} != {"assistant"}:
        return "malformed_pair"
    if any(m["role"] == "assistant" and not m["content"].strip() for m in chosen_reply + rejected_reply):
        return "empty_response"
    return prompt, chosen_reply, rejected_reply


def _same(a: dict[str, str], b: dict[str, str]) -> bool:
    return a["role"] == b["role"] and a["content"] == b["content"]
