"""Distinct-n diversity of sampled responses (Li et al., NAACL 2016), per prompt as in the GEM evaluation.

GEM (``liziniu/GEM`` ``evaluation_diversity.py``, from facebookresearch/rlfh-gen-div) pools the n-grams of all
samples of one prompt, takes distinct-n = #unique / #total n-grams, and averages over prompts. It tokenizes with
NLTK's ``word_tokenize`` on the templated prompt + response; here the response alone is scored (a shared prompt would
inflate the n-gram overlap) and words are split by a regex that, like ``word_tokenize``, separates punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """``"It's 5."`` -> ``["It", "'", "s", "5", "."]``: word characters and single punctuation marks."""
    return _WORD.findall(text)


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique / total n-grams pooled over ``texts``; 0.0 when they hold no n-gram (all shorter than n words)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pooled = [gram for text in texts for gram in ngrams(words(text), n)]
    return len(set(pooled)) / len(pooled) if pooled else 0.0


def diversity(samples: Sequence[Sequence[str]], ns: Sequence[int] = (1, 2, 3)) -> dict[str, float]:
    """``{"distinct_1": ..., ...}``: distinct-n of each prompt's samples, averaged over prompts (``samples[p][k]``)."""
    if not samples:
        raise ValueError("diversity needs at least one prompt's samples")
    return {f"distinct_{n}": sum(distinct_n(group, n) for group in samples) / len(samples) for n in ns}
