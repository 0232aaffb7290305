"""src.eval.ideal_point: distances to the ideal point and their paired intervals, from per-example lines."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from src.eval.ideal_point import Examples, read_lines, validation, versus


def lines(step: int, sft: list[float], tokens: list[int], dpo: list[float]) -> list[dict]:
    """What callback=validation_examples writes for one validation at batch size 1."""
    return ([{"step": step, "dataloader": 0, "batch": i, "objective": "sft", "weight": t, "val/sft_loss": v}
             for i, (v, t) in enumerate(zip(sft, tokens))]
            + [{"step": step, "dataloader": 1, "batch": i, "objective": "dpo", "weight": 1, "val/dpo_loss": v}
               for i, v in enumerate(dpo)])


def constant(sft: float, dpo: float, n: int = 3) -> Examples:
    return Examples(np.full(n, sft), np.ones(n), np.full(n, dpo))


def test_validation_takes_the_last_step_and_weights_sft_by_tokens(tmp_path):
    written = lines(0, [9.0, 9.0], [1, 1], [9.0]) + lines(10, [1.0, 3.0], [3, 1], [0.2, 0.4])
    path = tmp_path / "val_examples.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in written).encode()))
    read = read_lines(path)
    assert validation(read).losses() == pytest.approx((1.5, 0.3))  # (3*1 + 1*3) / 4, mean of the pairs
    assert validation(read, step=0).losses() == pytest.approx((9.0, 9.0))


def test_lines_without_both_streams_are_refused():
    with pytest.raises(ValueError, match="no per-example SFT and DPO lines at step 10"):
        validation([line for line in lines(10, [1.0], [2], [0.5]) if line["objective"] == "sft"])


def test_constant_values_give_the_hand_computed_difference_with_no_spread():
    # ideal point (1, 0): the SFT-only run's SFT loss, the DPO-only run's DPO loss
    values = {"sft": constant(1.0, 0.5), "dpo": constant(3.0, 0.0), "a": constant(2.0, 0.0), "b": constant(1.0, 2.0),
              "c": constant(4.0, 4.0)}
    out = versus(values, {"b": ["b"], "a": ["a"], "ac": ["a", "c"]}, "b", ["sft"], ["dpo"], resamples=200)
    assert out["a"] == pytest.approx({"distance": 1.0, "minus_b": -1.0, "low": -1.0, "high": -1.0})
    # a group of two runs: the mean of their distances, 1 and hypot(3, 4) = 5
    assert out["ac"]["distance"] == pytest.approx(3.0) and out["ac"]["minus_b"] == pytest.approx(1.0)
    assert out["ac"]["low"] == pytest.approx(-1.0) and out["ac"]["high"] == pytest.approx(3.0)  # runs drawn too


def test_identical_runs_differ_by_zero_and_a_shift_is_detected():
    rng = np.random.default_rng(0)
    base = Examples(rng.gamma(2.0, 1.0, 60), rng.integers(5, 40, 60).astype(float), rng.gamma(2.0, 0.3, 60))
    shifted = Examples(base.sft + 0.5, base.tokens, base.dpo)  # 0.5 nats worse on every SFT example
    values = {"sft": base, "dpo": Examples(base.sft + 2, base.tokens, base.dpo * 0), "x": base, "y": base,
              "z": shifted}
    out = versus(values, {"x": ["x"], "y": ["y"], "z": ["z"]}, "x", ["sft"], ["dpo"], resamples=2000)
    assert out["y"]["minus_x"] == 0 and out["y"]["low"] == 0 and out["y"]["high"] == 0
    assert out["z"]["minus_x"] > 0 and out["z"]["low"] > 0  # further from the ideal point, and the interval says so
    point = math.hypot(*np.subtract(shifted.losses(), (base.losses()[0], 0.0)))
    assert out["z"]["distance"] == pytest.approx(point)


def test_runs_on_different_held_out_sets_are_refused():
    values = {"sft": constant(1.0, 0.5), "dpo": constant(3.0, 0.0), "a": constant(2.0, 0.0, n=4)}
    with pytest.raises(ValueError, match="different held-out sets"):
        versus(values, {"a": ["a"]}, "a", ["sft"], ["dpo"], resamples=10)


def test_the_ideal_point_is_the_mean_of_several_single_objective_runs():
    # SFT-only runs at 1 and 3 -> L_sft* = 2; DPO-only runs at 0 and 2 -> L_dpo* = 1
    values = {"s1": constant(1.0, 9.0), "s2": constant(3.0, 9.0), "d1": constant(9.0, 0.0), "d2": constant(9.0, 2.0),
              "a": constant(5.0, 5.0), "b": constant(2.0, 1.0)}
    out = versus(values, {"b": ["b"], "a": ["a"]}, "b", ["s1", "s2"], ["d1", "d2"], resamples=50)
    assert out["a"]["distance"] == pytest.approx(5.0) and out["b"]["distance"] == pytest.approx(0.0)  # hypot(3, 4)
