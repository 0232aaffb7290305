"""Distinct-n against hand-counted n-grams."""

import pytest

from src.eval.metrics.distinct import distinct_n, diversity, words


def test_words_split_punctuation_like_word_tokenize():
    assert words("2 + 3 = 5. The answer is 5.") == ["2", "+", "3", "=", "5", ".", "The", "answer", "is", "5", "."]


def test_distinct_n_pools_the_samples_of_one_prompt():
    samples = ["a b a", "a b c"]
    # unigrams: a b a a b c -> {a, b, c} = 3 of 6; bigrams: ab ba ab bc -> 3 of 4; trigrams: aba abc -> 2 of 2.
    assert distinct_n(samples, 1) == pytest.approx(3 / 6)
    assert distinct_n(samples, 2) == pytest.approx(3 / 4)
    assert distinct_n(samples, 3) == pytest.approx(2 / 2)


def test_identical_samples_have_the_lowest_diversity():
    assert distinct_n(["x y z"] * 8, 1) == pytest.approx(3 / 24)
    assert distinct_n(["x y z"] * 8, 3) == pytest.approx(1 / 8)


def test_diversity_averages_per_prompt_scores():
    # prompt 1: "a a" -> distinct-1 = 1/2; prompt 2: "a", "b" -> 2/2. The mean is 0.75, not the pooled 2/4.
    assert diversity([["a a"], ["a", "b"]], ns=(1,)) == {"distinct_1": pytest.approx(0.75)}


def test_texts_shorter_than_n_score_zero_and_bad_n_raises():
    assert distinct_n(["one two"], 3) == 0.0
    with pytest.raises(ValueError, match="n must be >= 1"):
        distinct_n(["a"], 0)
