"""Distinct-n diversity of sampled responses (Li et al., NAACL 2016), per prompt as in the GEM evaluation.

GEM (``liziniu/GEM`` ``evaluation_diversity.py``, from facebookresearch/rlfh-gen-div) pools the n-grams of all
samples of one prompt, takes distinct-n = #unique / #total n-grams, and averages over prompts. It tokenizes with
NLTK's ``word_tokenize`` on the templated prompt + response; here the response alone is scored by default (a shared
prompt inflates the n-gram overlap; ``score_prompt=True`` prepends it, for comparability) and words are split by a
regex that, like ``word_tokenize``, separates punctuation. GEM averages distinct-1..3 into one number and reports x100.

``diversity_metrics`` gathers every diversity number of one run: distinct-n (here), self-BLEU
(``src.eval.metrics.self_bleu``) and embedding diversity (``src.eval.metrics.embeddings``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from src.eval.metrics.embeddings import embedding_diversity
from src.eval.metrics.self_bleu import mean_self_bleu

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


def with_prompts(samples_per_prompt: Sequence[Sequence[str]], prompts: Sequence[str]) -> list[list[str]]:
    """``prompt + "\\n" + sample`` for every sample: GEM scores the (templated) prompt and the response together."""
    if len(prompts) != len(samples_per_prompt):
        raise ValueError(f"got {len(prompts)} prompts for {len(samples_per_prompt)} groups of samples")
    return [[f"{prompt}\n{sample}" for sample in group] for prompt, group in zip(prompts, samples_per_prompt)]


def diversity_metrics(
    samples_per_prompt: Sequence[Sequence[str]],
    prompts: Sequence[str] | None = None,
    ns: Sequence[int] = (1, 2, 3, 4),
    score_prompt: bool = False,
    self_bleu_variant: str = "corrected",
    embedding: bool = True,
    embedding_model=None,
    embedding_variant: str = "corrected",
) -> dict[str, float]:
    """``distinct_<n>`` (0-1), ``self_bleu`` (0-100, lower = more diverse) and ``embedding_diversity`` (0-1).

    Each is computed per prompt and averaged over prompts; every prompt needs >= 2 samples. ``score_prompt`` needs
    ``prompts``. ``embedding_model``: a loaded SentenceTransformer, a name/path, or None for the offline MiniLM.
    """
    if score_prompt:
        if prompts is None:
            raise ValueError("score_prompt=True needs the prompts")
        samples_per_prompt = with_prompts(samples_per_prompt, prompts)
    metrics = diversity(samples_per_prompt, ns)
    metrics["self_bleu"] = mean_self_bleu(samples_per_prompt, self_bleu_variant)
    if embedding:
        metrics["embedding_diversity"] = embedding_diversity(
            samples_per_prompt, model=embedding_model, variant=embedding_variant
        )
    return metrics
