"""Which public data format a file's rows are in, detected from its first rows: pure functions on row dicts.

A :class:`Format` names the format and maps its roles (``prompt``, ``input``, ``response``, ``messages``,
``chosen``, ``rejected``) to the rows' field names; ``src/datamodules/rows.py`` reads each row through it.

SFT, in this order of precedence:

- ``messages``: a list of ``{"role", "content"}`` under ``messages``, ``conversations`` or ``conversation``
  (TRL's conversational form, UltraFeedback's ``train_sft``);
- ``sharegpt``: the same fields holding ShareGPT turns, ``{"from": "human" | "gpt" | "system", "value"}``;
- one prompt and one response: the first of :data:`PROMPT_FIELDS` and the first of :data:`RESPONSE_FIELDS` the
  rows have. ``instruction`` / ``input`` / ``output`` is Stanford Alpaca (``input`` is the optional context); Dolly's
  ``instruction`` / ``context`` / ``response``, TRL's ``prompt`` / ``completion``, GSM8K's ``question`` /
  ``answer``, MetaMathQA's ``query`` / ``response``, MATH's ``problem`` / ``solution`` and plain ``input`` /
  ``output`` are found the same way.

Preference pairs (:data:`PAIR_FIELDS`, e.g. ``chosen`` / ``rejected``):

- ``flat``: a prompt string (the first of :data:`PAIR_PROMPT_FIELDS`) and two response strings (TRL's standard form);
- ``conversational``: two message lists; a separate prompt (string or message list) when the lists hold only the
  replies, else the shared prefix of the two conversations is the prompt (UltraFeedback binarized);
- ``hh``: two Anthropic HH transcripts (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) sharing all but the last reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE = 16  # rows a format is detected from
CONVERSATION_FIELDS = ("messages", "conversations", "conversation")
PROMPT_FIELDS = ("instruction", "prompt", "question", "query", "problem", "input")
RESPONSE_FIELDS = ("output", "response", "completion", "answer", "solution")
CONTEXT_FIELDS = ("input", "context")  # the optional second part of an ``instruction`` prompt (Alpaca, Dolly)
PAIR_FIELDS = (("chosen", "rejected"), ("chosen_response", "rejected_response"), ("response_j", "response_k"))
PAIR_PROMPT_FIELDS = ("prompt", "instruction", "question", "query", "input")


@dataclass(frozen=True)
class Format:
    name: str
    fields: dict[str, str] = field(default_factory=dict)  # role -> the rows' field name
    detail: str = ""

    def describe(self) -> str:
        mapping = ", ".join(f"{role}={name}" for role, name in self.fields.items())
        return f"{self.name} ({mapping}{'; ' + self.detail if self.detail else ''})"


def first_rows(rows: Any) -> list[dict[str, Any]]:
    """The rows a format is detected from (a ``datasets.Dataset`` or a list)."""
    return [rows[i] for i in range(min(SAMPLE, len(rows)))]


def detection_line(fmt: Format, rows: list[dict[str, Any]]) -> str:
    """``<format> (<role>=<field>, ...); unused fields: [...]``, for the INFO line a DataModule logs."""
    unused = [f for f in present_fields(rows) if f not in fmt.fields.values()]
    return fmt.describe() + (f"; unused fields: {unused}" if unused else "")


def present_fields(rows: list[dict[str, Any]]) -> list[str]:
    """Fields with a value (not None) in at least one row, in the rows' order."""
    return list(dict.fromkeys(k for row in rows for k, v in row.items() if v is not None))


def values(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows if row.get(name) is not None]


def single_turn_format(prompt: str, response: str, context: str | None = None) -> Format:
    fields = {"prompt": prompt, **({"input": context} if context else {}), "response": response}
    name = "alpaca" if (prompt, response) == ("instruction", "output") else f"{prompt}/{response}"
    return Format(name, fields)


def detect_sft_format(rows: list[dict[str, Any]], source: str) -> Format:
    """The SFT format of ``rows`` (a file's first rows); an unknown one raises, naming the fields found and expected."""
    found = present_fields(rows)
    for name in CONVERSATION_FIELDS:
        turns = [t for conversation in values(rows, name) if isinstance(conversation, list) for t in conversation]
        if turns and all(isinstance(t, dict) for t in turns):
            if all("role" in t and "content" in t for t in turns):
                return Format("messages", {"messages": name})
            if all("from" in t and "value" in t for t in turns):
                return Format("sharegpt", {"messages": name})
    strings = [f for f in found if any(isinstance(v, str) for v in values(rows, f))]
    prompt = next((f for f in PROMPT_FIELDS if f in strings), None)
    response = next((f for f in RESPONSE_FIELDS if f in strings and f != prompt), None)
    if prompt and response:
        context = next((f for f in CONTEXT_FIELDS if f in found), None) if prompt == "instruction" else None
        return single_turn_format(prompt, response, context)
    hint = " (these look like preference pairs: use data=prefs_file)" if _pair_fields(found) else ""
    raise ValueError(
        f"{source}: unknown SFT format{hint}: its rows have the fields {found}; expected a list of "
        f"{{role, content}} or ShareGPT {{from, value}} turns under one of {list(CONVERSATION_FIELDS)}, or a prompt "
        f"field (one of {list(PROMPT_FIELDS)}) with a response field (one of {list(RESPONSE_FIELDS)}); or name "
        "yours with data.instruction_field=<field> data.response_field=<field>")


def detect_preference_format(rows: list[dict[str, Any]], source: str) -> Format:
    """The preference-pair format of ``rows``; an unknown one raises, naming the fields found and expected."""
    found = present_fields(rows)
    pair = _pair_fields(found)
    prompt = next((f for f in PAIR_PROMPT_FIELDS if f in found), None)
    expected = (f"expected a pair of fields (one of {[list(p) for p in PAIR_FIELDS]}) holding response strings with "
                f"a prompt field (one of {list(PAIR_PROMPT_FIELDS)}), message lists (a prompt field optional), or "
                "Anthropic HH transcripts ('\\n\\nHuman: ... \\n\\nAssistant: ...')")
    if pair is None:
        hint = " (these look like SFT rows: use data=sft_file)" if _is_sft(rows, source) else ""
        raise ValueError(f"{source}: unknown preference format{hint}: its rows have the fields {found}; {expected}")
    chosen, rejected = pair
    first = values(rows, chosen)[0]
    fields = {**({"prompt": prompt} if prompt else {}), "chosen": chosen, "rejected": rejected}
    if isinstance(first, list):
        explicit = bool(first) and isinstance(first[0], dict) and first[0].get("role") == "assistant"
        detail = "the prompt is the shared prefix of the two conversations" if not explicit else ""
        return Format("conversational", fields if explicit else {"chosen": chosen, "rejected": rejected}, detail)
    if isinstance(first, str) and prompt:
        return Format("flat", fields)
    if isinstance(first, str) and any("Human:" in v and "Assistant:" in v for v in values(rows, chosen)):
        return Format("hh", {"chosen": chosen, "rejected": rejected}, "the prompt is the shared transcript head")
    raise ValueError(f"{source}: unknown preference format: {chosen!r} / {rejected!r} hold "
                     f"{type(first).__name__} values with no prompt field and no Human/Assistant turns (fields "
                     f"{found}); {expected}")


def _pair_fields(found: list[str]) -> tuple[str, str] | None:
    return next((pair for pair in PAIR_FIELDS if set(pair) <= set(found)), None)


def _is_sft(rows: list[dict[str, Any]], source: str) -> bool:
    try:
        detect_sft_format(rows, source)
    except ValueError:
        return False
    return True
