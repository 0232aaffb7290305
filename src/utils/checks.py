"""Hyperparameter validation that names the config key, so a bad sweep value fails before training starts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def require(condition: bool, key: str, value: Any, expected: str) -> None:
    """Raise ``ValueError("<key>=<value> is out of range: expected <expected>")`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{key}={value!r} is out of range: expected {expected}")


def require_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not a valid choice: expected one of {choices}")


# Groups whose options are also placed below other nodes (data@eval.data, data.sft, eval@eval.tasks.<name>): their
# errors name keys as the group's own place has them (data.val_size), which is not what the user sets there.
PLACED_GROUPS = ("data", "eval")


def rekey(message: str, group: str, at: str, keys: Iterable[str]) -> str:
    """``message`` with each ``<group>.<key>`` (for ``key`` in ``keys``) named where the node is: ``<at>.<key>``.

    ``rekey("data.val_size=9 ...", "data", "eval.data", ["val_size"])`` -> ``"eval.data.val_size=9 ..."``. Only the
    node's own keys are rewritten, so a file name such as ``data.json`` is left alone.
    """
    names = sorted((str(k) for k in keys), key=len, reverse=True)
    if at == group or not names:
        return message
    pattern = rf"(?<![\w./-]){re.escape(group)}\.({'|'.join(map(re.escape, names))})(?![\w-])"
    return re.sub(pattern, lambda found: f"{at}.{found.group(1)}", message)


def group_of(key: str) -> str | None:
    """The placed group a config node at ``key`` belongs to: the last of its parts that names one
    (``eval.tasks.ppl.data`` -> ``data``, ``eval.tasks.gsm8k`` -> ``eval``, ``data.sft`` -> ``data``)."""
    return next((part for part in reversed(key.split(".")) if part in PLACED_GROUPS), None)
