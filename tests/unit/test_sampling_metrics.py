"""pass@k against the closed form, and maj@k / best-of-n / reward-of-n against hand-made samples."""

from math import comb

import pytest

from src.eval.sampling_metrics import (
    best_of_n,
    best_value_of_n,
    maj_at_k,
    majority_vote,
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


def test_maj_at_k_votes_among_the_first_k():
    answers = [["1", None, None, "2", "2"], ["7", "7", "8", "8", "8"]]
    gold = ["2", "8"]
    # Prompt 1: k=1 -> "1"; k=3 -> "1" (the Nones abstain); k=5 -> "2" (2 votes to 1).
    # Prompt 2: k=1 -> "7"; k=3 -> "7"; k=5 -> "8".
    assert maj_at_k(answers, gold, [1, 3, 5]) == {1: 0.0, 3: 0.0, 5: 1.0}
    # With None voting, prompt 1 at k=5 ties None (2, seen first) with "2" (2): None wins and is wrong.
    assert maj_at_k(answers, gold, [1, 3, 5], none_votes=True) == {1: 0.0, 3: 0.0, 5: 0.5}


def test_best_of_n_picks_the_first_highest_score():
    scores = [[0.1, 0.9, 0.5], [0.4, 0.4, 0.8]]
    correct = [[True, False, True], [False, True, True]]
    # k=1: samples 0, 0 -> T, F; k=2: samples 1, 0 (tie -> first) -> F, F; k=3: samples 1, 2 -> F, T.
    assert best_of_n(scores, correct, [1, 2, 3]) == {1: 0.5, 2: 0.0, 3: 0.5}


def test_mean_and_best_value_of_n():
    values = [[1.0, 3.0, 5.0], [0.0, 2.0, 10.0]]
    # mean: k=1 (1+0)/2; k=2 (2+1)/2; k=3 (3+4)/2. best: k=1 (1+0)/2; k=2 (3+2)/2; k=3 (5+10)/2.
    assert mean_of_n(values, [1, 2, 3]) == pytest.approx({1: 0.5, 2: 1.5, 3: 3.5})
    assert best_value_of_n(values, [1, 2, 3]) == pytest.approx({1: 0.5, 2: 2.5, 3: 7.5})


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
