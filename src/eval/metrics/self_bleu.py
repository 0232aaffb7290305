"""Self-BLEU (Zhu et al., "Texygen", SIGIR 2018): how much each sample of one prompt reads like the others.

Each of a prompt's n samples is the hypothesis and the other n-1 are its references; the n BLEU scores are averaged,
then averaged over prompts. Scale 0-100, higher = *less* diverse (GEM reports ``100 - self_bleu``).

Two variants, because the official GEM script (``liziniu/GEM`` ``evaluation_diversity.py``, ``SelfBLEUMetric``) gets
the sacrebleu call wrong (``/work/shared/reference/gem_convex.md`` 1.5, checked here with sacrebleu 2.6.0):

- ``self_bleu`` (corrected): ``corpus_bleu([hyp], [[r] for r in others])`` -- n-1 reference *streams* of one segment
  each, so every other sample is a reference of the hypothesis.
- ``self_bleu_gem_official``: ``corpus_bleu([hyp], [others])`` -- ONE stream of n-1 segments. sacrebleu zips the
  hypotheses with each stream, so only the stream's first segment is aligned with the single hypothesis: each sample is
  compared with sample 0 alone (sample 1 for sample 0 itself). Kept only to compare with numbers GEM published.
"""

from __future__ import annotations

from collections.abc import Sequence


def _corpus_bleu():
    try:
        import sacrebleu
    except ImportError as err:  # optional: only evaluation needs it
        raise ImportError("self-BLEU needs sacrebleu: pip install sacrebleu") from err
    return sacrebleu.corpus_bleu


def _leave_one_out(samples: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``[(hyp_i, others_i)]``: each sample paired with the remaining n-1, in their original order."""
    if isinstance(samples, str) or len(samples) < 2:
        raise ValueError(f"self-BLEU needs a list of >= 2 samples of one prompt, got {samples!r:.80}")
    return [(hyp, [*samples[:i], *samples[i + 1:]]) for i, hyp in enumerate(samples)]


def self_bleu(samples: Sequence[str]) -> float:
    """Mean over samples of BLEU(sample, all other samples as separate references); 0-100, one prompt's samples."""
    corpus_bleu = _corpus_bleu()
    pairs = _leave_one_out(samples)
    return sum(corpus_bleu([hyp], [[ref] for ref in others]).score for hyp, others in pairs) / len(pairs)


def self_bleu_gem_official(samples: Sequence[str]) -> float:
    """GEM's call, bug included: each sample is effectively scored against ``others[0]`` only (see module doc)."""
    corpus_bleu = _corpus_bleu()
    pairs = _leave_one_out(samples)
    return sum(corpus_bleu([hyp], [others]).score for hyp, others in pairs) / len(pairs)


SELF_BLEU_VARIANTS = {"corrected": self_bleu, "gem_official": self_bleu_gem_official}


def mean_self_bleu(samples_per_prompt: Sequence[Sequence[str]], variant: str = "corrected") -> float:
    """Self-BLEU of each prompt's samples (``samples_per_prompt[p][k]``), averaged over prompts as GEM does."""
    if variant not in SELF_BLEU_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(SELF_BLEU_VARIANTS)}, got {variant!r}")
    if not samples_per_prompt:
        raise ValueError("mean_self_bleu needs at least one prompt's samples")
    score = SELF_BLEU_VARIANTS[variant]
    return sum(score(group) for group in samples_per_prompt) / len(samples_per_prompt)
