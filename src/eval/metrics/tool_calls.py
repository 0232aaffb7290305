"""SDFT's OpenFunctions check: the gold call must appear verbatim (after normalising) somewhere in the response.

From ``sail-sg/sdft`` ``eval/eval_openfunction.py`` (``standardize_function_call``, ``check_openfunction``), also used
by ``eval/gen_distilled_data.py`` to filter distilled responses. Arguments are compared as text, so reordering
keyword arguments fails the check.
"""

from __future__ import annotations

import re

_CALL = re.compile(r"^\s*[\w.]+\(.*\)\s*$")  # name(args), the name possibly dotted


def normalise_call(text: str) -> str:
    """Strip, collapse whitespace runs to one space, then ``'`` -> ``"``, then ``", "`` -> ``","`` (the official order:
    ``"f(a, b)"`` -> ``"f(a,b)"``, but a newline after a comma becomes a space first and is then removed too)."""
    text = re.sub(r"\s+", " ", text.strip())
    return text.replace("'", '"').replace(", ", ",")


def gold_call(gold: str) -> str:
    """The normalised gold call; ValueError when it is not ``name(args)``.

    Stricter than the official ``re.match``, which ignores text after the last ``)``; here nothing may follow it.
    """
    call = normalise_call(gold)
    if not _CALL.match(call):
        raise ValueError(f"gold is not a function call name(args): {gold!r}")
    return call


def call_in_response(gold: str, response: str) -> bool:
    """Whether the normalised gold call appears in the normalised response, starting at a word boundary (so a gold
    ``get(x)`` does not match inside ``forget(x)``, while prose around the call is allowed)."""
    return re.search(r"\b" + re.escape(gold_call(gold)), normalise_call(response)) is not None
