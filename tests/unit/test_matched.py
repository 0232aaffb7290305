"""Matched-quality comparison (src/eval/matched.py): curves read at the same x by linear interpolation, never
extrapolated."""

from __future__ import annotations

import json

import pytest

from src.eval.matched import compare_curves, curve_from_dirs, main

A = [(0.2, 10.0), (0.4, 30.0), (0.6, 40.0)]  # (pass@1, self-BLEU), one point per temperature
B = [(0.3, 20.0), (0.5, 24.0), (0.7, 60.0)]


def test_hand_computed_interpolation():
    """At x=0.5, A lies halfway between (0.4, 30) and (0.6, 40): 35; B is measured there: 24. At x=0.3, A is 20
    (halfway from 10 to 30) and B 20. At 0.4: B is 20 + (0.1 / 0.2) * 4 = 22. At 0.6: B is 24 + 0.5 * 36 = 42."""
    matched = compare_curves(A, B)
    assert matched.x == [0.3, 0.4, 0.5, 0.6]  # every measured x in [0.3, 0.6], the range both cover
    assert matched.a == pytest.approx([20.0, 30.0, 35.0, 40.0])
    assert matched.b == pytest.approx([20.0, 22.0, 24.0, 42.0])
    assert matched.difference == pytest.approx([0.0, -8.0, -11.0, 2.0])
    assert matched.not_comparable == [0.2, 0.7]  # measured by one curve only
    assert "linear interpolation" in matched.interpolation and "no extrapolation" in matched.interpolation


def test_refuses_to_extrapolate():
    matched = compare_curves(A, B, at=[0.1, 0.25, 0.45, 0.65])
    assert matched.x == [0.45]
    assert matched.not_comparable == [0.1, 0.25, 0.65]
    assert compare_curves([(0, 0), (0.2, 1)], [(0.5, 0), (0.9, 1)]).x == []  # disjoint ranges: nothing to compare


def test_unsorted_points_are_sorted_by_x():
    """A temperature sweep lists its points in temperature order; pass@1 need not fall with it."""
    assert compare_curves(list(reversed(A)), [B[2], B[0], B[1]]) == compare_curves(A, B)


def test_a_repeated_x_with_two_values_is_an_error():
    with pytest.raises(ValueError, match=r"curve b: x=0.3 has two y values \(20, 25\)"):
        compare_curves(A, [*B, (0.3, 25.0)])
    assert compare_curves(A, [*B, B[0]]) == compare_curves(A, B)  # the same point twice is one point


def test_ties_mean_averages_a_repeated_x():
    """B with a second point at x=0.3 (y 25): one point at (0.3, 22.5), so B read at 0.4 is 22.5 + 0.5 * 1.5."""
    matched = compare_curves(A, [*B, (0.3, 25.0)], ties="mean")
    assert matched.b == pytest.approx([22.5, 23.25, 24.0, 42.0])
    assert compare_curves(A, B, ties="mean") == compare_curves(A, B)  # no ties: the same as the default
    with pytest.raises(ValueError, match="ties='median' is not a valid choice"):
        compare_curves(A, B, ties="median")


def test_equal_curves_give_zero_differences():
    matched = compare_curves(A, list(A))
    assert matched.difference == [0.0, 0.0, 0.0] and matched.not_comparable == []


def test_cli_on_metrics_files(tmp_path, capsys):
    dirs = {}
    for name, curve in (("sft", A), ("gem", B)):
        dirs[name] = []
        for i, (x, y) in enumerate(curve):
            d = tmp_path / f"{name}{i}"
            d.mkdir()
            (d / "metrics.json").write_text(json.dumps({"toy/pass@1": x, "toy/self_bleu": y}))
            dirs[name].append(str(d))
    assert curve_from_dirs(dirs["sft"], "toy/pass@1", "toy/self_bleu") == A
    main(["--x", "toy/pass@1", "--y", "toy/self_bleu", "--curve", "sft=" + ",".join(dirs["sft"]),
          "--curve", "gem=" + ",".join(dirs["gem"]), "--at", "0.5", "0.9", "--out", str(tmp_path / "m.md")])
    table = (tmp_path / "m.md").read_text()
    assert "| 0.5 | 35 | 24 | -11 |" in table and "Not comparable (outside the x range both curves cover): 0.9" in table
    assert table in capsys.readouterr().out
    with pytest.raises(ValueError, match="has no toy/accuracy"):
        curve_from_dirs(dirs["sft"], "toy/accuracy", "toy/self_bleu")
