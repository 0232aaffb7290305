"""Hyperparameter validation that names the config key, so a bad sweep value fails before training starts."""

from __future__ import annotations

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
