"""Filters that decide whether a distilled response replaces the original (SDFT ``eval/gen_distilled_data.py``).

Each filter is a small object with a ``name`` and ``reject(candidate) -> bool``; ``distill.filters`` lists them (a
mapping, applied in order; the first that rejects is recorded). A rejected row keeps its original response
(``fallback: original``, SDFT's rule) or is dropped (``fallback: drop``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from src.eval.metrics.answers import answers_match
from src.eval.metrics.tool_calls import call_in_response


@dataclass
class Candidate:
    """One row's distillation: the gold (``reference``) and the seed model's rewrite (``response``)."""

    id: str
    reference: str
    response: str
    truncated: bool = False


# SDFT's generic check (``verify``): meta-responses that talk about the template instead of answering.
BAN_PHRASES = ("reference answer", "your response", "my response", "your own response", "now it's your turn")


class BanPhrases:
    """Reject a response containing a phrase (case-insensitive) or starting with a prefix (case-sensitive)."""

    name = "ban_phrases"

    def __init__(self, phrases: tuple[str, ...] = BAN_PHRASES, start_phrases: tuple[str, ...] = ("Your turn",)):
        self.phrases = tuple(p.lower() for p in phrases)
        self.start_phrases = tuple(start_phrases)

    def reject(self, c: Candidate) -> bool:
        text = c.response.strip()
        return any(p in text.lower() for p in self.phrases) or text.startswith(self.start_phrases)


class MathAnswer:
    """Reject unless the last number of the response equals the gold's (SDFT's ``check_math``, shared with
    ``eval=gsm8k``: ``src.eval.metrics.answers``, extractor ``last_number``)."""

    name = "math_answer"

    def __init__(self, extractor: str = "last_number"):
        self.extractor = extractor

    def reject(self, c: Candidate) -> bool:
        return not answers_match(c.reference, c.response, self.extractor)


class FunctionCall:
    """Reject unless the gold ``name(args)`` appears, normalised, in the response (SDFT's openfunction check)."""

    name = "function_call"

    def reject(self, c: Candidate) -> bool:
        return not call_in_response(c.reference, c.response)


class CodeBlock:
    """Reject unless the response has a ```` ```python ```` fence and starts with an allowed opening (magicoder)."""

    name = "code_block"

    def __init__(self, openings: tuple[str, ...] = ("I have", "Here is", "I implemented")):
        self.openings = tuple(openings)

    def reject(self, c: Candidate) -> bool:
        text = c.response.strip()
        return "```python" not in text or not text.startswith(self.openings)


class Truncated:
    """Reject a response that hit ``max_new_tokens`` without an end of sequence (beyond the paper: a cut answer
    would teach the model to stop mid-sentence)."""

    name = "truncated"

    def reject(self, c: Candidate) -> bool:
        return bool(c.truncated)


class Empty:
    """Reject a response with no non-whitespace text."""

    name = "empty"

    def reject(self, c: Candidate) -> bool:
        return not re.sub(r"\s+", "", c.response)


FILTERS = {f.name: f for f in (BanPhrases, MathAnswer, FunctionCall, CodeBlock, Truncated, Empty)}
