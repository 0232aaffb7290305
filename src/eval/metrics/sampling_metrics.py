"""Metrics over n sampled responses per prompt: pass@k, maj@k (self-consistency voting) and best-of-n.

Every metric takes per-prompt lists (``x[p][i]`` is sample i of prompt p) and, for each k, is the expectation over
the C(n, k) subsets of k of the n samples (computed exactly, no sampling), averaged over prompts. So metric@k uses
all n samples whatever k is, and a metric at k = 1 is the plain share over single samples (maj@1 = pass@1). Looking
at the first k samples only (GEM's ``liziniu/GEM`` ``evaluation_gsm8k_voting.py``) gives the same expectation but a
noisier estimate. Voting follows that script otherwise; its "best of n" is the oracle "gold is among the k", which is
pass@k here, and ``best_of_n`` picks by a score (the policy's log-prob, a reward model).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
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


def majority_wins(answers: Sequence[str | None], gold: str | None, none_votes: bool = False) -> list[float]:
    """``[P(the vote of a random k-subset of answers is gold) for k = 1..n]``, exactly, by counting subsets.

    The vote is ``majority_vote`` on the subset in sample order: a tie goes to the answer whose first sample in the
    subset comes earliest. Gold wins a subset iff it has j >= 1 votes there and every other voting answer has fewer,
    or exactly j with all of them after gold's first. So, for gold's first chosen sample at position p and j gold
    votes, the subsets are C(later gold samples, j - 1) times the ways to pick the rest: answer x contributes t < j of
    its n_x samples (C(n_x, t) ways) or t = j of its samples after p; a non-voting sample (None) any. The generating
    polynomials of those choices, multiplied, count the subsets of every size at once.
    """
    n = len(answers)
    votes = [a if (none_votes or a is not None) else _ABSTAIN for a in answers]
    gold_at = [i for i, a in enumerate(votes) if gold is not None and a == gold]
    others: dict[object, list[int]] = defaultdict(list)
    for i, a in enumerate(votes):
        if a != gold:
            others[a].append(i)
    abstain = len(others.pop(_ABSTAIN, []))
    wins = [0] * (n + 1)  # wins[k]: k-subsets whose vote is gold
    for g, p in enumerate(gold_at):
        later = len(gold_at) - g - 1
        for j in range(1, later + 2):
            free = abstain  # samples that cannot outvote gold at j votes: any number of them may be chosen
            ways = [1]  # ways[t]: choices of t samples of the other answers
            for positions in others.values():
                if len(positions) < j:
                    free += len(positions)
                    continue
                after = sum(q > p for q in positions)
                choices = [math.comb(len(positions), t) for t in range(j)] + [math.comb(after, j)]
                ways = _times(ways, choices, n - j)
            ways = _times(ways, [math.comb(free, t) for t in range(free + 1)], n - j)
            for t, count in enumerate(ways):
                wins[j + t] += math.comb(later, j - 1) * count
    return [wins[k] / math.comb(n, k) for k in range(1, n + 1)]


_ABSTAIN = object()  # the vote of an unparseable sample when it does not vote


def _times(a: list[int], b: list[int], degree: int) -> list[int]:
    """The product of two polynomials (coefficient lists), up to ``degree``."""
    out = [0] * min(len(a) + len(b) - 1, degree + 1)
    for i, x in enumerate(a[:degree + 1]):
        for j, y in enumerate(b[:degree + 1 - i]):
            out[i + j] += x * y
    return out


def maj_at_k(
    answers_per_prompt: Sequence[Sequence[str | None]],
    gold_per_prompt: Sequence[str | None],
    ks: Sequence[int],
    none_votes: bool = False,
) -> dict[int, float]:
    """``{k: share of prompts whose vote among k of the n answers equals the gold}``, in expectation over the k-subsets
    (``majority_wins``). A None vote is wrong, and so is every vote when the gold is None."""
    _check_ks(answers_per_prompt, ks)
    if len(gold_per_prompt) != len(answers_per_prompt):
        raise ValueError(f"{len(answers_per_prompt)} prompts of answers but {len(gold_per_prompt)} golds")
    wins = [majority_wins(answers, gold, none_votes) for answers, gold in zip(answers_per_prompt, gold_per_prompt)]
    return {k: sum(w[k - 1] for w in wins) / len(wins) for k in ks}


def top_of_subset(n: int, k: int) -> list[float]:
    """``[P(the r-th ranked of n samples is the top of a random k-subset) for r = 0..n-1]``: C(n-1-r, k-1) / C(n, k)
    (the other k - 1 come from the n - 1 - r ranked below it)."""
    return [math.comb(n - 1 - r, k - 1) / math.comb(n, k) for r in range(n)]


def _ranked(scores: Sequence[float]) -> list[int]:
    """Sample indices from the highest score down; a tie ranks the earlier sample first."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def best_of_n(
    scores_per_prompt: Sequence[Sequence[float]],
    correct_per_prompt: Sequence[Sequence[bool]],
    ks: Sequence[int],
) -> dict[int, float]:
    """``{k: share of prompts whose highest-scoring of k samples is correct}``, in expectation over the k-subsets of
    the n samples; ties pick the earliest sample."""
    _check_ks(scores_per_prompt, ks)
    if [len(s) for s in scores_per_prompt] != [len(c) for c in correct_per_prompt]:
        raise ValueError("scores_per_prompt and correct_per_prompt must have the same shape")
    values = [[float(bool(c[i])) for i in _ranked(s)] for s, c in zip(scores_per_prompt, correct_per_prompt)]
    return _expected_top(values, ks)


def best_value_of_n(values_per_prompt: Sequence[Sequence[float]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: max of k of the n values, in expectation over the k-subsets, averaged over prompts}`` (GEM's best-of-n
    reward)."""
    _check_ks(values_per_prompt, ks)
    return _expected_top([[v[i] for i in _ranked(v)] for v in values_per_prompt], ks)


def _expected_top(ranked_values: list[list[float]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: mean over prompts of the expected value of the top-ranked of k samples}``; values in rank order."""
    return {k: sum(sum(w * v for w, v in zip(top_of_subset(len(vs), k), vs)) for vs in ranked_values)
            / len(ranked_values) for k in ks}


def mean_of_n(values_per_prompt: Sequence[Sequence[float]], ks: Sequence[int]) -> dict[int, float]:
    """``{k: mean of k of the n values, averaged over prompts}`` (GEM's mean-of-n reward): in expectation over the
    k-subsets that is the mean of all n, whatever k."""
    _check_ks(values_per_prompt, ks)
    return {k: sum(sum(v) / len(v) for v in values_per_prompt) / len(values_per_prompt) for k in ks}
