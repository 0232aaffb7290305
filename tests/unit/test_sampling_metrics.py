"""pass@k against the closed form; maj@k / best-of-n / reward-of-n against hand-made samples, against the plain mean
over every k-subset, and at their limits (k=1 is the share over single samples, k=n the vote of all n)."""

import itertools
import random
from math import comb

import pytest

from src.eval.metrics.sampling_metrics import (
    best_of_n,
    best_value_of_n,
    maj_at_k,
    majority_vote,
    majority_wins,
    mean_of_n,
    mean_pass_at_k,
    pass_at_k,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)=3, C(5,2)=10
        (10, 3, 1, 0.3),  # pass@1 is the plain fraction correct
        (10, 3, 5, 1 - 21 / 252),  # C(7,5)=21, C(10,5)=252
        (4, 0, 1, 0.0),  # c=0
        (4, 0, 4, 0.0),
        (3, 3, 1, 1.0),  # c=n
        (5, 4, 2, 1.0),  # n-c=1 < k=2: every pair holds a correct sample
    ],
)
def test_pass_at_k_hand_values_and_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    closed = 1.0 if n - c < k else 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(closed)


def test_pass_at_k_matches_closed_form_on_a_table():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1.0 if n - c < k else 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed)


@pytest.mark.parametrize(("n", "c", "k", "match"), [(4, 1, 0, "k=0"), (4, 1, 5, "k=5"), (4, 5, 1, "c=5"),
                                                    (4, -1, 1, "c=-1")])
def test_pass_at_k_rejects_bad_arguments(n, c, k, match):
    with pytest.raises(ValueError, match=match):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_averages_over_prompts():
    correct = [[True, False, False, False], [True, True, False, False]]
    # k=1: (1/4 + 2/4) / 2; k=2: prompt 1: 1 - C(3,2)/C(4,2) = 1/2, prompt 2: 1 - C(2,2)/C(4,2) = 5/6.
    assert mean_pass_at_k(correct, [1, 2]) == pytest.approx({1: 0.375, 2: (0.5 + 5 / 6) / 2})


def test_majority_vote_breaks_ties_by_first_seen():
    assert majority_vote(["3", "4"]) == "3"
    assert majority_vote(["4", "3", "3", "4"]) == "4"
    assert majority_vote(["1", "2", "2"]) == "2"


def test_none_does_not_vote_unless_asked():
    answers = [None, None, "5"]
    assert majority_vote(answers) == "5"
    assert majority_vote(answers, none_votes=True) is None  # the official GEM behaviour
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


@pytest.mark.parametrize(("answers", "gold", "expected"), [
    # k=1: 2 of 3 samples say "2". k=2: {0,1} ties "2","1" -> "2" (seen first), {0,2} -> "2", {1,2} ties -> "1".
    (["2", "1", "2"], "2", [2 / 3, 2 / 3, 1.0]),
    # k=2: {0,1} ties -> "1", {0,2} ties -> "1", {1,2} -> "2". A tie lost to an earlier answer makes maj@2 < maj@1.
    (["1", "2", "2"], "2", [2 / 3, 1 / 3, 1.0]),
    # None abstains. k=2: {0,1} -> "1", {0,2} -> "2", {1,2} ties -> "1". k=3 ties "1","2" -> "1".
    ([None, "1", "2"], "2", [1 / 3, 1 / 3, 0.0]),
    ([None, None, "2"], "2", [1 / 3, 2 / 3, 1.0]),  # any subset holding sample 2 votes "2"
    (["1", "1", "1"], "2", [0.0, 0.0, 0.0]),
])
def test_maj_at_k_hand_values_over_every_k_subset(answers, gold, expected):
    assert maj_at_k([answers], [gold], [1, 2, 3]) == pytest.approx(dict(zip([1, 2, 3], expected)))


def test_none_votes_lets_an_unparseable_answer_win():
    # GEM's official variant: k=2: {0,1} ties None,"1" -> None; {0,2} ties -> None; {1,2} ties -> "1". k=3: None.
    assert maj_at_k([[None, "1", "2"]], ["2"], [1, 2, 3], none_votes=True) == pytest.approx({1: 1 / 3, 2: 0, 3: 0})


def random_answers(seed: int, prompts: int = 30, pool: tuple = (None, "1", "2", "3")) -> tuple[list, list]:
    rng = random.Random(seed)
    answers = [[rng.choice(pool) for _ in range(rng.randint(1, 8))] for _ in range(prompts)]
    return answers, [rng.choice(["1", "2"]) for _ in range(prompts)]


@pytest.mark.parametrize("none_votes", [False, True])
def test_maj_at_k_is_the_plain_mean_over_every_k_subset(none_votes):
    """The counting formula against enumerating the C(n, k) subsets and voting in each (ties as majority_vote)."""
    for answers, gold in zip(*random_answers(0, prompts=60)):
        n = len(answers)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(answers, k))
            plain = sum(majority_vote(s, none_votes) == gold for s in subsets) / len(subsets)
            assert majority_wins(answers, gold, none_votes)[k - 1] == pytest.approx(plain, abs=1e-12)


def test_maj_at_1_is_pass_at_1_and_maj_at_n_is_the_vote_of_all_n():
    answers, gold = random_answers(1)
    for n in (3, 8):
        same_n = [a[:n] + ["1"] * (n - len(a[:n])) for a in answers]
        correct = [[x == g for x in a] for a, g in zip(same_n, gold)]
        assert maj_at_k(same_n, gold, [1])[1] == pytest.approx(mean_pass_at_k(correct, [1])[1], abs=1e-12)
        first_n = sum(majority_vote(a) == g for a, g in zip(same_n, gold)) / len(gold)  # the old first-k value
        assert maj_at_k(same_n, gold, [n])[n] == first_n


def test_a_gold_of_none_is_never_matched():
    assert maj_at_k([[None, None]], [None], [1, 2]) == {1: 0.0, 2: 0.0}
    assert maj_at_k([[None, None]], [None], [1, 2], none_votes=True) == {1: 0.0, 2: 0.0}


def test_best_of_n_is_the_top_of_every_k_subset():
    scores = [[0.1, 0.9, 0.5], [0.4, 0.4, 0.8]]
    correct = [[True, False, True], [False, True, True]]
    # Prompt 1 ranks samples 1 (F), 2 (T), 0 (T); prompt 2 ranks 2 (T), 0 (F, the tie's earlier), 1 (T).
    # The r-th ranked tops a k-subset with probability C(n-1-r, k-1) / C(n, k): k=2 -> 2/3, 1/3, 0.
    # k=1: (2/3 + 2/3) / 2; k=2: (1/3 + 2/3) / 2; k=3: (0 + 1) / 2.
    assert best_of_n(scores, correct, [1, 2, 3]) == pytest.approx({1: 2 / 3, 2: 1 / 2, 3: 1 / 2})


def test_best_of_n_limits_and_plain_mean():
    rng = random.Random(2)
    scores = [[rng.choice([0.0, 0.5, 1.0]) for _ in range(6)] for _ in range(20)]  # many ties
    correct = [[rng.random() < 0.5 for _ in range(6)] for _ in range(20)]
    bon = best_of_n(scores, correct, range(1, 7))
    assert bon[1] == pytest.approx(mean_pass_at_k(correct, [1])[1])
    assert bon[6] == sum(c[max(range(6), key=s.__getitem__)] for s, c in zip(scores, correct)) / 20  # first max
    for k in range(1, 7):
        plain = [sum(c[max(sub, key=s.__getitem__)] for sub in itertools.combinations(range(6), k)) / comb(6, k)
                 for s, c in zip(scores, correct)]
        assert bon[k] == pytest.approx(sum(plain) / 20)


def test_mean_and_best_value_of_n():
    values = [[1.0, 3.0, 5.0], [0.0, 2.0, 10.0]]
    # mean of k: the mean of all n for every k. best of k: ranked 5, 3, 1 -> k=1 3, k=2 5*2/3 + 3/3 = 13/3, k=3 5;
    # ranked 10, 2, 0 -> k=1 4, k=2 22/3, k=3 10.
    assert mean_of_n(values, [1, 2, 3]) == pytest.approx({1: 3.5, 2: 3.5, 3: 3.5})
    assert best_value_of_n(values, [1, 2, 3]) == pytest.approx({1: 3.5, 2: 35 / 6, 3: 7.5})


def test_k_beyond_a_prompts_samples_names_the_prompt():
    with pytest.raises(ValueError, match="prompt 1 has n=2"):
        mean_pass_at_k([[True, True, False], [True, False]], [3])
    with pytest.raises(ValueError, match="prompt 0"):
        maj_at_k([["1"]], ["1"], [2])
    with pytest.raises(ValueError, match="prompt 0"):
        best_value_of_n([[1.0]], [0])


def test_shape_mismatches_raise():
    with pytest.raises(ValueError, match="golds"):
        maj_at_k([["1"], ["2"]], ["1"], [1])
    with pytest.raises(ValueError, match="same shape"):
        best_of_n([[1.0, 2.0]], [[True]], [1])
