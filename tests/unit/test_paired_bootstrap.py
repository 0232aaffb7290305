"""The paired bootstrap (src/eval/metrics/bootstrap.py) on synthetic data: a hand-enumerated case, limit cases,
coverage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from src.eval.metrics.bootstrap import paired_bootstrap, percentile_interval, resampled_differences

TRUE = 0.1  # the simulated methods' difference in expectation over prompts (and seeds)


def test_three_prompts_by_enumeration():
    """Method right on prompt 0 only, baseline never: a resample's difference is (times prompt 0 is drawn) / 3.

    Over all 27 draws of 3 prompt ids: 8 give 0, 12 give 1/3, 6 give 2/3, 1 gives 1. Percentiles (type 7) of the 27
    sorted values: 2.5th at position 26 * 0.025 = 0.65, between two zeros -> 0; 97.5th at 25.35, between 2/3
    (position 25) and 1 (position 26) -> 2/3 + 0.35 * 1/3 = 0.78333."""
    baseline, method = np.zeros((1, 3)), np.array([[1.0, 0.0, 0.0]])
    draws = np.array(list(itertools.product(range(3), repeat=3)))  # (27, 3)
    one_seed = np.zeros((27, 1), dtype=int)
    differences = resampled_differences(baseline, method, draws, one_seed, one_seed)
    assert sorted(differences * 3) == pytest.approx([0] * 8 + [1] * 12 + [2] * 6 + [3])
    low, high = percentile_interval(differences)
    assert low == 0.0
    assert high == pytest.approx(2 / 3 + 0.35 / 3)
    interval = paired_bootstrap(baseline, method, resamples=4000, seed=0)
    assert interval.difference == pytest.approx(1 / 3)  # the point estimate is the plain mean difference
    assert (interval.baseline, interval.method) == (0.0, pytest.approx(1 / 3))
    assert interval.low == 0.0 and interval.high in (pytest.approx(2 / 3), 1.0)  # its 97.5th of 4000 random draws


def test_seeds_are_resampled_per_method_and_averaged():
    """Two seeds of the method at 0 and 1 on one prompt: each resample's value is the mean of two drawn seeds."""
    baseline, method = np.zeros((1, 1)), np.array([[0.0], [1.0]])
    prompt = np.zeros((4, 1), dtype=int)
    seeds = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    differences = resampled_differences(baseline, method, prompt, np.zeros((4, 1), dtype=int), seeds)
    assert differences.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert paired_bootstrap(baseline, method, 1000).difference == 0.5


def test_identical_runs_give_zero_and_a_zero_width_interval():
    values = np.random.default_rng(0).integers(0, 2, (1, 50)).astype(float)
    interval = paired_bootstrap(values, values.copy(), resamples=2000, seed=1)
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)  # paired: every resample is 0


def test_a_shift_of_0_2_accuracy_on_200_prompts_is_detected():
    """The method fixes 60 of the baseline's 100 wrong prompts and breaks 20 of its 100 right ones: +40/200 = +0.2."""
    rng = np.random.default_rng(0)
    baseline = rng.permutation(np.repeat([0.0, 1.0], 100))
    method = baseline.copy()
    method[rng.choice(np.flatnonzero(baseline == 0), 60, replace=False)] = 1
    method[rng.choice(np.flatnonzero(baseline == 1), 20, replace=False)] = 0
    interval = paired_bootstrap(baseline, method, resamples=5000, seed=0)
    assert (interval.baseline, interval.method) == (0.5, 0.7)
    assert interval.difference == pytest.approx(0.2)
    assert 0.1 < interval.low < 0.2 < interval.high < 0.3  # about 0.2 +- 1.96 * sqrt(0.36 / 200)
    assert paired_bootstrap(baseline, method, resamples=5000, seed=0) == interval  # seeded


def _coverage(simulate, datasets: int = 200, resamples: int = 1000) -> float:
    rng = np.random.default_rng(1)
    hits = 0
    for d in range(datasets):
        interval = paired_bootstrap(*simulate(rng), resamples=resamples, seed=d)
        hits += interval.low <= TRUE <= interval.high
    return hits / datasets


def test_coverage_over_prompts():
    """4 samples of 100 prompts whose difficulty varies (q ~ U(0.1, 0.8)); the method adds 0.1 to every prompt's
    success rate. Pairing matters here: unpaired, the prompts' spread widens the interval (coverage near 1)."""

    def simulate(rng):
        q = rng.uniform(0.1, 0.8, 100)
        return rng.binomial(4, q) / 4, rng.binomial(4, q + TRUE) / 4

    assert 0.90 <= _coverage(simulate) <= 0.99


def test_coverage_over_seeds_and_prompts():
    """8 seeds x 40 prompts of a continuous score (a diversity-like metric): prompt effects shared by both methods,
    a per-seed offset (sd 0.1) that dominates the difference's noise, and per-cell noise. Without the seed level the
    interval ignores the seeds' spread and covers about a quarter of the time."""

    def simulate(rng):
        prompt = rng.normal(0, 1, 40)
        runs = [prompt + shift + rng.normal(0, 0.1, (8, 1)) + rng.normal(0, 0.1, (8, 40)) for shift in (0, TRUE)]
        return tuple(runs)

    assert 0.85 <= _coverage(simulate) <= 0.99  # 8 seeds: the percentile interval runs a little narrow


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="same prompts"):
        paired_bootstrap(np.zeros((1, 3)), np.zeros((1, 4)))
