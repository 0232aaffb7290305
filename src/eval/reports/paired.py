"""Paired differences between methods, with bootstrap intervals over prompts and seeds: the ``## Paired differences``
section of ``comparison.md`` (``python -m src.eval.compare``) and its figure.

A method is a set of runs that differ only in their seed: by default the runs whose row labels are the same once
``seed=`` parts (``seed=1``, ``T=1 seed=1``, ``train.seed=1``) and the repeat suffix ``(parent/dir)`` are removed;
``--group NAME=DIR,DIR`` names one explicitly (evaluations of models trained with different seeds differ in their
model, so they need it). The baseline is the method of the first directory, or ``--baseline NAME|DIR``.

For every metric of the table that each run defines per prompt (``src.eval.reports.per_prompt``, recomputed from
``samples.jsonl`` and checked against ``metrics.json``), each other method is compared with the baseline on the
prompts they share, matched by (task, prompt id): a prompt missing from any of their runs is an error naming it,
unless ``--allow-missing`` drops it (the count is printed and the table's prompt column says how many were used).
The interval is ``src.eval.metrics.bootstrap.paired_bootstrap``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src.eval.metrics.bootstrap import Interval, paired_bootstrap
from src.eval.reports.per_prompt import per_prompt_values, samples_file
from src.eval.reports.report import format_value

if TYPE_CHECKING:
    from src.eval.reports.comparison import EvalRun

SEED_PART = re.compile(r"(?:^|\s)\S*seed=\S+")  # "seed=1", "eval.seed=1", "toy:seed=1"
REPEAT = re.compile(r"\s\([^()]*\)$")  # set_labels' " (parent/dir)" for rows nothing else tells apart


@dataclass
class Method:
    name: str
    runs: list[EvalRun]
    values: list[dict[str, dict[str, float]]] = field(default_factory=list)  # per run: {metric: {prompt id: value}}


@dataclass
class PairedRow:
    metric: str
    baseline: str
    method: str
    interval: Interval
    prompts: int
    seeds: tuple[int, int]  # (baseline's, method's)
    dropped: int  # prompts left out because a run lacks them (--allow-missing)


def parse_groups(specs: list[str]) -> dict[str, list[Path]]:
    """``["sft=a,b", "gem=c,d"]`` -> ``{"sft": [a, b], "gem": [c, d]}`` (resolved paths)."""
    groups = {}
    for spec in specs:
        name, sep, dirs = spec.partition("=")
        if not sep or not name or not dirs:
            raise ValueError(f"--group {spec!r}: expected NAME=DIR[,DIR...]")
        groups[name] = [Path(d).resolve() for d in dirs.split(",") if d]
    return groups


def group_methods(runs: list[EvalRun], groups: dict[str, list[Path]]) -> list[Method]:
    """Methods in order of their first run; a run in ``groups`` joins its named method, any other joins the runs
    whose label is the same without its seed."""
    named = {path: name for name, paths in groups.items() for path in paths}
    methods: dict[str, Method] = {}
    for run in runs:
        name = named.get(run.path.resolve()) or REPEAT.sub("", SEED_PART.sub("", run.label)).strip() or "runs"
        methods.setdefault(name, Method(name, [])).runs.append(run)
    return list(methods.values())


def has_samples(runs: list[EvalRun]) -> bool:
    return all(samples_file(run.path) is not None for run in runs)


def paired_rows(methods: list[Method], baseline: str | None, cols: list[str], resamples: int, seed: int,
                allow_missing: bool) -> tuple[list[PairedRow], dict[str, str]]:
    """``(rows, {metric: why left out})``; one row per metric and non-baseline method."""
    base = _baseline(methods, baseline)
    left_out: dict[str, str] = {}
    for method in methods:
        method.values = []
        for run in method.runs:
            values, why = per_prompt_values(run.path, run.metrics, run.config, cols)
            method.values.append(values)
            left_out.update(why)
    rows = []
    for metric in cols:
        for method in (m for m in methods if m is not base):
            runs = base.values + method.values
            if metric in left_out or not all(metric in values for values in runs):
                continue
            ids, dropped = _shared_prompts(metric, base, method, allow_missing)
            arrays = [np.array([[v[metric][pid] for pid in ids] for v in m.values]) for m in (base, method)]
            rows.append(PairedRow(metric, base.name, method.name, paired_bootstrap(*arrays, resamples, seed),
                                  len(ids), (len(base.runs), len(method.runs)), dropped))
    return rows, left_out


def _baseline(methods: list[Method], baseline: str | None) -> Method:
    if baseline is None:
        return methods[0]
    path = Path(baseline).resolve()
    for method in methods:
        if method.name == baseline or any(run.path.resolve() == path for run in method.runs):
            return method
    raise ValueError(f"--baseline {baseline}: neither a method ({', '.join(m.name for m in methods)}) nor one of "
                     "their directories")


def _shared_prompts(metric: str, base: Method, method: Method, allow_missing: bool) -> tuple[list[str], int]:
    """The prompt ids every run of both methods scored, in the first baseline run's order; and how many dropped."""
    runs = [(run, values[metric]) for m in (base, method) for run, values in zip(m.runs, m.values)]
    first = list(runs[0][1])
    shared = set(first).intersection(*(values for _, values in runs))
    every = dict.fromkeys(pid for _, values in runs for pid in values)
    missing = [pid for pid in every if pid not in shared]
    if missing and not allow_missing:
        pid = missing[0]
        has = next(run.path for run, values in runs if pid in values)
        lacks = next(run.path for run, values in runs if pid not in values)
        raise ValueError(f"{metric}: prompt id {pid!r} is in {has} but not in {lacks} ({len(missing)} prompts are "
                         "not in every run); compare runs on the same prompts, or pass --allow-missing to drop them")
    if missing:
        print(f"warning: {metric}, {base.name} vs {method.name}: {len(missing)} prompts not in every run, dropped",
              file=sys.stderr)
    return [pid for pid in first if pid in shared], len(missing)


def paired_markdown(rows: list[PairedRow], left_out: dict[str, str], methods: list[Method], resamples: int,
             seed: int) -> str:
    lines = ["## Paired differences", "",
             "| metric | baseline | method | baseline value | method value | difference | 95% CI | prompts | seeds |",
             "|---" * 9 + "|"]
    for row in rows:
        i = row.interval
        prompts = f"{row.prompts} ({row.dropped} dropped)" if row.dropped else str(row.prompts)
        lines.append(f"| {row.metric} | {row.baseline} | {row.method} | {format_value(i.baseline)} | "
                     f"{format_value(i.method)} | {i.difference:+.4g} | [{i.low:.4g}, {i.high:.4g}] | {prompts} | "
                     f"{row.seeds[0]} / {row.seeds[1]} |")
    lines += ["", "Difference = method - baseline of the mean over prompts (and over a method's seeds), recomputed "
              "per prompt from samples.jsonl. 95% CI: the 2.5th and 97.5th percentiles of the difference over "
              f"{resamples} paired bootstrap resamples (numpy seed {seed}): prompt ids drawn with replacement, the "
              "same for both methods, and each method's seeds drawn with replacement "
              "(src/eval/metrics/bootstrap.py).", ""]
    lines += [f"- {m.name}: " + ", ".join(f"`{run.path}`" for run in m.runs) for m in methods]
    lines += [f"- not compared, {metric}: {why}" for metric, why in left_out.items()]
    return "\n".join(lines) + "\n"
