"""Matched-quality comparison: two methods' trade-off curves read at the same x (e.g. diversity at equal pass@1).

    python -m src.eval.matched --x TASK/METRIC --y TASK/METRIC --curve NAME=DIR,DIR,... --curve NAME=DIR,... \
        [--at X ...] [--out FILE.md]

A curve is a list of (x, y) points of one method, e.g. one per temperature or per exported step (each DIR an
``eval.py`` directory whose ``metrics.json`` has both keys). Comparing raw points compares methods at different
quality; reading both curves at the same x does not. Each curve is sorted by x (a sweep's points need not come in x
order: pass@1 is not monotone in temperature or step), then read at x by linear interpolation between its two
measured neighbours (``np.interp``). Only x inside the range that *both* curves cover is read: outside it a curve
would be extrapolated, so those x are reported as not comparable, never filled in. Two points with the same x and
different y make the curve no function of x: an error naming them. By default the x values are every measured x of
either curve inside the shared range.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.utils.checks import require_choice

INTERPOLATION = ("linear interpolation between each curve's two nearest measured points, curves sorted by x; no "
                 "extrapolation: x outside the range both curves cover is not comparable")

Curve = list[tuple[float, float]]


@dataclass
class Matched:
    x: list[float]  # the comparable x values, ascending
    a: list[float]  # curve a read at x
    b: list[float]
    difference: list[float]  # b - a at each x
    not_comparable: list[float]  # asked-for (or measured) x outside the shared range
    interpolation: str = INTERPOLATION


TIES = ("error", "mean")


def sorted_curve(points: Curve, name: str = "curve", ties: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` ascending in x; repeated identical points merged. A repeated x with another y is an error, or with
    ``ties="mean"`` one point at the mean of its y values (a score on a few prompts takes few values, so two exported
    steps can share an x: the mean is the curve's best reading there)."""
    require_choice("ties", ties, TIES)
    unique = sorted(set((float(x), float(y)) for x, y in points))
    if not unique:
        raise ValueError(f"{name}: no points")
    merged: dict[float, list[float]] = {}
    for x, y in unique:
        if x in merged and ties == "error":
            raise ValueError(f"{name}: x={x:g} has two y values ({merged[x][0]:g}, {y:g}); a curve read at x needs "
                             "one (ties='mean' averages them)")
        merged.setdefault(x, []).append(y)
    return np.array(list(merged)), np.array([sum(ys) / len(ys) for ys in merged.values()])


def compare_curves(a: Curve, b: Curve, at: list[float] | None = None, ties: str = "error") -> Matched:
    """Both curves read at ``at`` (default: every measured x of either curve in the shared range) and b - a;
    ``ties`` as in :func:`sorted_curve`."""
    (xa, ya), (xb, yb) = sorted_curve(a, "curve a", ties), sorted_curve(b, "curve b", ties)
    low, high = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    wanted = sorted(set(float(x) for x in at)) if at is not None else sorted(set(xa) | set(xb))
    inside = [x for x in wanted if low <= x <= high]
    outside = [x for x in wanted if not low <= x <= high]
    ra, rb = np.interp(inside, xa, ya), np.interp(inside, xb, yb)
    return Matched(inside, ra.tolist(), rb.tolist(), (rb - ra).tolist(), outside)


def curve_from_dirs(dirs: list[str | Path], x: str, y: str) -> Curve:
    """``[(metrics[x], metrics[y])]`` of each directory's ``metrics.json``; a missing key is an error naming it."""
    points = []
    for d in dirs:
        metrics = json.loads((Path(d) / "metrics.json").read_text())
        missing = [key for key in (x, y) if key not in metrics]
        if missing:
            raise ValueError(f"{d}/metrics.json has no {', '.join(missing)}")
        points.append((metrics[x], metrics[y]))
    return points


def markdown(matched: Matched, names: tuple[str, str], x: str, y: str) -> str:
    a, b = names
    lines = [f"| {x} | {y}: {a} | {y}: {b} | {b} - {a} |", "|---|---|---|---|"]
    lines += [f"| {xv:.4g} | {ya:.4g} | {yb:.4g} | {d:+.4g} |"
              for xv, ya, yb, d in zip(matched.x, matched.a, matched.b, matched.difference)]
    if matched.not_comparable:
        lines += ["", "Not comparable (outside the x range both curves cover): "
                  + ", ".join(f"{x:.4g}" for x in matched.not_comparable)]
    return "\n".join(lines + ["", f"Read by {matched.interpolation}."]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--x", required=True, help="the quality axis, a metrics.json key (toyworld_sampled/pass@1)")
    parser.add_argument("--y", required=True, help="the compared metric, a metrics.json key")
    parser.add_argument("--curve", action="append", required=True, metavar="NAME=DIR,DIR",
                        help="one method's points; give two (the first is a)")
    parser.add_argument("--at", type=float, nargs="+", help="x values to read at (default: every measured x)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if len(args.curve) != 2 or not all("=" in c for c in args.curve):
        parser.error("give exactly two --curve NAME=DIR,DIR,...")
    (na, da), (nb, db) = (c.split("=", 1) for c in args.curve)
    matched = compare_curves(curve_from_dirs(da.split(","), args.x, args.y),
                             curve_from_dirs(db.split(","), args.x, args.y), args.at)
    table = markdown(matched, (na, nb), args.x, args.y)
    if args.out:
        Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
