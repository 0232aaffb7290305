"""Several evaluations or training runs side by side: one table and one figure.

    python -m src.eval.compare DIR [DIR ...] [--out-dir DIR] [--label-key KEY] [--metrics PATTERN ...]
        [--group NAME=DIR,DIR ...] [--baseline NAME|DIR] [--resamples 10000] [--bootstrap-seed 0] [--allow-missing]

Each DIR is an ``eval.py`` or ``train.py`` output directory (``metrics.json`` with flat ``task/metric`` or
``val/metric`` keys, and ``.hydra/``), or a Hydra multirun directory, which stands for its numbered job directories.
A row is labelled by what differs between the rows: the command-line overrides (``module.beta=0.3``, from
``.hydra/overrides.yaml``), and for an evaluation the evaluated model (the run directory name of ``model_path``) and
the decoding settings (``T=0.6``). Writes ``comparison.md`` (a column per metric; of pass@k, maj@k and bon_*@k only
the largest k of each row, unless ``--metrics`` selects columns) and ``comparison.png``: accuracy against diversity
(self-BLEU and distinct-2, one point per row) when a task has both -- the temperature-sweep trade-off -- else a panel
per metric (src/eval/reports/compare_figure.py): a line against the swept value when the rows differ in one number, bars
labelled by row otherwise.

When every run has ``samples.jsonl``, ``comparison.md`` also gets ``## Paired differences``: each method's
difference from the baseline per metric, with a 95% paired bootstrap interval over prompts and seeds, and
``paired.png`` draws them as error bars and ``paired.json`` holds them unrounded (src/eval/reports/paired.py;
``--resamples 0`` leaves them out).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from src.eval.reports.comparison import columns, expand, load, markdown, paired_section, set_labels, write_figure
from src.eval.reports.paired import parse_groups


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", help="eval.py or train.py output directories, or multirun directories")
    parser.add_argument("--out-dir", help="where to write comparison.md/.png (default: the dirs' common parent)")
    parser.add_argument("--label-key", action="append", default=[],
                        help="a dotted config key added to every label, e.g. eval.num_prompts (repeatable)")
    parser.add_argument("--metrics", nargs="+", help="columns: glob patterns on task/metric or metric (pass@*)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=DIR,DIR",
                        help="runs of one method (its seeds), compared as one (repeatable); default: same label "
                             "but for seed=")
    parser.add_argument("--baseline", help="the method (name or one of its dirs) others are compared with "
                                           "(default: the first dir's)")
    parser.add_argument("--resamples", type=int, default=10_000, help="paired bootstrap resamples; 0: no intervals")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    parser.add_argument("--allow-missing", action="store_true",
                        help="drop prompts some run lacks (counted) instead of stopping with an error")
    args = parser.parse_args(argv)
    groups = parse_groups(args.group)
    dirs = args.dirs + [str(path) for paths in groups.values() for path in paths]
    if not dirs:
        parser.error("give evaluation directories, or --group NAME=DIR,DIR")
    paths = dict.fromkeys(job.resolve() for d in dirs for job in expand(d))
    runs = [load(path) for path in paths]
    set_labels(runs, args.label_key)
    cols = columns(runs, args.metrics)
    out = Path(args.out_dir or os.path.commonpath([Path(d).resolve() for d in dirs]))
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(runs, cols) + paired_section(runs, cols, groups, args, out)
    (out / "comparison.md").write_text(f"# Comparison of {len(runs)} runs\n\n{table}")
    kind = write_figure(runs, cols, out / "comparison.png")
    print(table + f"\nwrote {out / 'comparison.md'} and {out / 'comparison.png'} ({kind})")


if __name__ == "__main__":
    main()
