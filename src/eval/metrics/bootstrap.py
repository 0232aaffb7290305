"""The paired bootstrap over prompts (and seeds) of a difference between two methods: pure numpy, no files.

A method's per-prompt values form a ``(S, P)`` array: S runs (seeds) of the method, each scored on the same P
prompts, in the same prompt order for both methods. Its value is the mean over seeds of the mean over prompts.

Each resample draws P prompt positions with replacement, **the same positions for both methods** (a prompt that is
hard for one method is hard for the other: pairing removes that variance from the difference; Efron & Tibshirani
1993, ch. 10, and Koehn 2004's paired bootstrap for MT), and each method's S seeds with replacement, independently
per method (seed i of one method has nothing to do with seed i of the other). Seeds and prompts are crossed (every
seed scores every prompt), so both levels are drawn for every resample; with one seed per method the seed draw is
trivial and this is the plain paired bootstrap over prompts. The interval is the percentile interval of the
resampled differences (``np.percentile``, linear interpolation between order statistics: Hyndman & Fan's type 7).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

CHUNK = 1 << 22  # array elements per block of resamples: bounds memory whatever the numbers of prompts and seeds


class Interval(NamedTuple):
    baseline: float  # mean over seeds of the mean over prompts
    method: float
    difference: float  # method - baseline, on all prompts and seeds (the point estimate)
    low: float  # percentile interval of the resampled differences
    high: float


def resampled_means(values: np.ndarray, prompt_idx: np.ndarray, seed_idx: np.ndarray) -> np.ndarray:
    """``(B,)``: for each resample b, the mean over seeds ``seed_idx[b]`` of the mean over prompts ``prompt_idx[b]``.

    values ``(S, P)``, prompt_idx ``(B, P)`` and seed_idx ``(B, S)`` integer positions."""
    per_seed = values[:, prompt_idx].mean(-1)  # (S, B): every seed on resample b's prompts
    return np.take_along_axis(per_seed.T, seed_idx, axis=1).mean(1)  # (B,)


def resampled_differences(baseline: np.ndarray, method: np.ndarray, prompt_idx: np.ndarray,
                          baseline_seeds: np.ndarray, method_seeds: np.ndarray) -> np.ndarray:
    """``(B,)`` method - baseline for given draws; one ``prompt_idx`` for both methods is what makes it paired."""
    return resampled_means(method, prompt_idx, method_seeds) - resampled_means(baseline, prompt_idx, baseline_seeds)


def percentile_interval(differences: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` share of ``differences``: its (1-level)/2 and (1+level)/2 percentiles (type 7)."""
    low, high = np.percentile(differences, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def paired_bootstrap(baseline: np.ndarray, method: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> Interval:
    """The difference method - baseline and its bootstrap interval; arrays ``(S, P)`` (or ``(P,)`` for one seed),
    column p the same prompt in both. Same inputs and seed give the same interval."""
    baseline, method = np.atleast_2d(np.asarray(baseline, float)), np.atleast_2d(np.asarray(method, float))
    prompts = baseline.shape[1]
    if method.shape[1] != prompts or prompts == 0:
        raise ValueError(f"paired values need the same prompts, at least one: got {baseline.shape} and {method.shape}")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    rng = np.random.default_rng(seed)
    block = max(1, CHUNK // (prompts * max(len(baseline), len(method))))
    differences = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        prompt_idx = rng.integers(0, prompts, (size, prompts))  # (b, P), shared by the two methods
        baseline_seeds = rng.integers(0, len(baseline), (size, len(baseline)))  # (b, S_baseline)
        method_seeds = rng.integers(0, len(method), (size, len(method)))  # (b, S_method)
        differences.append(resampled_differences(baseline, method, prompt_idx, baseline_seeds, method_seeds))
    low, high = percentile_interval(np.concatenate(differences), level)
    base, other = float(baseline.mean()), float(method.mean())  # every seed has every prompt: the grand mean
    return Interval(base, other, other - base, low, high)
