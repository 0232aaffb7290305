"""Anthropic HH transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") to chat messages and back, as pure functions."""

from __future__ import annotations

import re

TURN = re.compile(r"\n\n(Human|Assistant):")
ROLES = {"Human": "user", "Assistant": "assistant"}
MARKERS = {role: marker for marker, role in ROLES.items()}


def parse_hh_transcript(text: object) -> list[dict[str, str]] | str:
    """``"\\n\\nHuman: hi\\n\\nAssistant: hello"`` -> ``[{user: "hi"}, {assistant: "hello"}]``, or a drop reason.

    Turn contents are stripped of surrounding whitespace. A transcript may omit the leading blank line. It must start
    with a Human turn, alternate roles, and end with an Assistant turn (whose content may be empty: the pair check
    reports that as ``empty_response``); otherwise the reason is ``malformed_transcript``.
    """
    if not isinstance(text, str):
        return "missing_field"
    parts = TURN.split("\n\n" + text.lstrip())  # ["", "Human", " hi", "Assistant", " hello", ...]
    if parts[0].strip() or len(parts) < 5:
        return "malformed_transcript"
    messages = [{"role": ROLES[marker], "content": text.strip()} for marker, text in zip(parts[1::2], parts[2::2])]
    expected = ["user", "assistant"] * (len(messages) // 2)
    if len(messages) % 2 or [m["role"] for m in messages] != expected:
        return "malformed_transcript"
    return messages


def raw_hh_prompt(messages: list[dict[str, str]]) -> str:
    """The HH transcript of ``messages`` followed by the open "\\n\\nAssistant:" that the reply continues."""
    turns = "".join(f"\n\n{MARKERS[m['role']]}: {m['content']}" for m in messages)
    return turns + "\n\nAssistant:"
