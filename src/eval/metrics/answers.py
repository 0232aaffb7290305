"""Final-answer extraction and comparison for math and toy-world tasks, by a named extractor.

- ``last_number``: SDFT's rule (``sail-sg/sdft`` ``eval/utils.py`` ``find_last_integer``, compared as in
  ``eval/eval_math.py`` ``check_math``, which ``eval/gen_distilled_data.py`` reuses to filter distilled responses).
  The last number in the text counts; a non-integer maps to a sentinel, so GSM8K golds (always integers) never
  match one.
- ``math_verify``: HuggingFace's ``math-verify`` parser and symbolic checker, for answers like ``\\frac{1}{2}``.
- ``toyworld``: the word after the last "The answer is" (``src.toyworld.tasks.extract_answer``).

Each extractor gives ``key`` (a printable canonical answer, used as the majority-vote key) and ``match`` (gold text,
response) -> bool. ``answers_match`` extracts from the gold too, so the gold may be a bare answer or a full worked
solution such as GSM8K's "... #### 18".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from src.toyworld.tasks import extract_answer as toyworld_answer

# sdft eval/utils.py: an optional minus, digits, then comma- or whitespace-separated digit groups, then decimals.
_NUMBER = re.compile(r"-?\d+(?:[,\s]\d+)*(?:\.\d+)?")
SDFT_INVALID = -999999999  # find_last_integer's sentinel for a non-integer answer


def _last_number_text(text: str) -> str | None:
    """The last number match with its thousands separators removed: ``"a 1,234 b"`` -> ``"1234"``."""
    found = _NUMBER.findall(text)
    return re.sub(r"[,\s]", "", found[-1]) if found else None


def last_number(text: str) -> float | None:
    """The last number in ``text``, or None: ``"1,234"`` -> 1234, ``"12 000"`` -> 12000, ``"3.5"`` -> 3.5.

    Commas and whitespace inside a match are both thousands separators, so ``"3 4"`` (or ``"3\\n4"``) reads as 34.
    That is a known quirk of the official rule, kept so that scores compare with the SDFT paper's.
    """
    number = _last_number_text(text)
    return float(number) if number is not None else None


def sdft_integer(text: str) -> int | None:
    """The official comparison value: the integer part of the last number, ``"3.0"`` -> 3, or ``SDFT_INVALID``
    when its fractional part is non-zero (``"3.5"``). None when there is no number (the official code returns the
    sentinel there too; None keeps "no answer" apart). Parsed from the digits, so large integers stay exact."""
    number = _last_number_text(text)
    if number is None:
        return None
    whole, _, fraction = number.partition(".")
    if fraction and int(fraction) != 0:
        return SDFT_INVALID
    return int(whole)


def _require_math_verify():
    try:
        import math_verify
    except ImportError as err:  # an optional dependency: only the math_verify extractor needs it
        raise ImportError("the math_verify extractor needs math-verify: pip install math-verify") from err
    return math_verify


def math_verify_answer(text: str) -> object | None:
    """The first expression ``math_verify.parse`` extracts (a SymPy object, or its string fallback), or None.

    ``parse`` returns ``[expr, matched_string]``: ``"\\boxed{\\frac{1}{2}}"`` -> ``[Rational(1, 2), "\\frac{1}{2}"]``,
    ``"0.5"`` -> ``[Float(0.5), "0.5"]``. Its timeouts use signals, so call it from the main thread.
    """
    parsed = _require_math_verify().parse(text)
    return parsed[0] if parsed else None


def math_verify_equal(gold_text: str, pred_text: str) -> bool:
    """``math_verify.verify(parse(gold), parse(pred))``: numeric, then symbolic equality. Not symmetric in general
    (the gold goes first); False when either side has no parsable answer."""
    mv = _require_math_verify()
    gold, pred = mv.parse(gold_text), mv.parse(pred_text)
    return bool(gold and pred and mv.verify(gold, pred))


def _last_number_key(text: str) -> str | None:
    value = sdft_integer(text)
    return None if value is None else str(value)


def _last_number_match(gold: str, response: str) -> bool:
    # As check_math: int(gold) == int(pred). Unlike it, two texts without any number do not match.
    want, got = sdft_integer(gold), sdft_integer(response)
    return want is not None and got is not None and want == got


def _math_verify_key(text: str) -> str | None:
    answer = math_verify_answer(text)
    return None if answer is None else str(answer)


def _toyworld_match(gold: str, response: str) -> bool:
    # The gold is a bare answer ("42") or a full response ("... The answer is 42."): only here do we fall back to it.
    want, got = toyworld_answer(gold) or gold.strip(), toyworld_answer(response)
    return got is not None and got == want


class Extractor(NamedTuple):
    key: Callable[[str], str | None]
    match: Callable[[str, str], bool]


EXTRACTORS: dict[str, Extractor] = {
    "last_number": Extractor(_last_number_key, _last_number_match),
    "math_verify": Extractor(_math_verify_key, math_verify_equal),
    "toyworld": Extractor(toyworld_answer, _toyworld_match),
}


def _get(extractor: str) -> Extractor:
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; valid names: {sorted(EXTRACTORS)}")
    return EXTRACTORS[extractor]


def extract(text: str, extractor: str) -> str | None:
    """A printable canonical answer, the key for majority voting: ``"The answer is 3.0"`` -> ``"3"`` (last_number).

    math_verify keys are ``str`` of the SymPy value, so equal values may still differ as keys: ``"1/2"`` vs
    ``"0.500000000000000"``.
    """
    return _get(extractor).key(text)


def answers_match(gold: str, response: str, extractor: str) -> bool:
    """Whether ``response``'s final answer equals the one extracted from ``gold``."""
    return _get(extractor).match(gold, response)
