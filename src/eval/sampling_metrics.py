"""Metrics over n sampled responses per prompt: pass@k, maj@k (self-consistency voting) and best-of-n.

Every metric takes per-prompt lists (``x[p][i]`` is sample i of prompt p) and, for each k, looks at the FIRST k samples
of each prompt, then averages over prompts. Voting follows GEM (``liziniu/GEM`` ``evaluation_gsm8k_voting.py``,
``calculate_accuracy_voting``). That script's "best of n" is the oracle "gold is among the first k"; here
``best_of_n`` picks by a score (a reward model), and the oracle is pass@k.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021 (Codex, eq. 1): 1 - C(n-c, k) / C(n, k), for c correct of n samples.

    Computed as in the paper's numpy snippet, 1 - prod_{i=n-c+1}^{n} (1 - k / i), which avoids huge binomials.
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got c={c}, n={n}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _check_ks(per_prompt: Sequence[Sequence[object]], ks: Sequence[int]) -> None:
    if not per_prompt:
        raise ValueError("need at least one prompt")
    for p, samples in enumerate(per_prompt):
        for k in ks:
            if not 1 <= k <= len(samples):
                raise ValueError(f"k={k} needs 1 <= k <= n, but prompt {p} has n={len(samples)} samples")


def mean_pass_at_k(correct: Sequence[Sequence[bool]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: pass@k averaged over prompts}``; each prompt uses all of its n samples (``correct[p][i]``)."""
    _check_ks(correct, ks)
    return {k: sum(pass_at_k(len(c), sum(c), k) for c in correct) / len(correct) for k in ks}


def majority_vote(answers: Sequence[str | None], none_votes: bool = False) -> str | None:
    """The most common answer; ties go to the one seen first (``Counter.most_common`` keeps insertion order).

    An unparseable answer (None) does not vote, and all-None gives None. ``none_votes=True`` is the official GEM code's
    variant, where None is an answer like any other and can win the vote.
    """
    votes = Counter(a for a in answers if none_votes or a is not None)
    return votes.most_common(1)[0][0] if votes else None


def maj_at_k(
    answers_per_prompt: Sequence[Sequence[str | None]],
    gold_per_prompt: Sequence[str],
    ks: Sequence[int],
    none_votes: bool = False,
) -> dict[int, float]:
    """``{k: fraction of prompts whose vote among the first k answers equals the gold}``. A None vote is wrong."""
    _check_ks(answers_per_prompt, ks)
    if len(gold_per_prompt) != len(answers_per_prompt):
        raise ValueError(f"{len(answers_per_prompt)} prompts of answers but {len(gold_per_prompt)} golds")
    result = {}
    for k in ks:
        votes = [majority_vote(answers[:k], none_votes) for answers in answers_per_prompt]
        result[k] = sum(v is not None and v == g for v, g in zip(votes, gold_per_prompt)) / len(votes)
    return result


def best_of_n(
    scores_per_prompt: Sequence[Sequence[float]],
    correct_per_prompt: Sequence[Sequence[bool]],
    ks: Sequence[int],
) -> dict[int, float]:
    """``{k: fraction of prompts whose highest-scoring sample among the first k is correct}``; ties pick the first."""
    _check_ks(scores_per_prompt, ks)
    if [len(s) for s in scores_per_prompt] != [len(c) for c in correct_per_prompt]:
        raise ValueError("scores_per_prompt and correct_per_prompt must have the same shape")
    result = {}
    for k in ks:
        # max() returns the first maximal index, so the earliest sample wins a tie.
        chosen = [max(range(k), key=scores.__getitem__) for scores in scores_per_prompt]
        result[k] = sum(bool(c[i]) for c, i in zip(correct_per_prompt, chosen)) / len(chosen)
    return result


def mean_of_n(values_per_prompt: Sequence[Sequence[float]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: mean of the first k values, averaged over prompts}`` (GEM's mean-of-n reward)."""
    _check_ks(values_per_prompt, ks)
    return {k: sum(sum(v[:k]) / k for v in values_per_prompt) / len(values_per_prompt) for k in ks}


def best_value_of_n(values_per_prompt: Sequence[Sequence[float]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: max of the first k values, averaged over prompts}`` (GEM's best-of-n reward)."""
    _check_ks(values_per_prompt, ks)
    return {k: sum(max(v[:k]) for v in values_per_prompt) / len(values_per_prompt) for k in ks}
