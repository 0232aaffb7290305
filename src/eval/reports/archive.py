"""Keep an evaluation small enough to commit: its numbers, its config and its per-prompt samples, gzipped.

    python -m src.eval.reports.archive <eval or run dir> <dest>

A study calls :func:`archive_all` on its runs folder, so its committed ``results/samples/`` re-score every number.

``dest`` gets ``metrics.json``, ``.hydra/config.yaml`` (what the re-scoring reads: the task settings, the model, the
seed) and ``samples.jsonl.gz``, so ``python -m src.eval.compare <dest> ...`` recomputes every per-prompt metric and
its paired interval without generating again (``per_prompt.py`` reads the gzipped file as the plain one). A
training run's final evaluation keeps its place (``<run>/eval/samples.jsonl.gz``) beside the run's numbers. The
gzip header carries no time, so archiving the same evaluation twice writes the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

from src.eval.reports.per_prompt import samples_file


def archive_eval(source: Path, dest: Path) -> Path:
    """Copy ``source``'s evaluation (``metrics.json``, config, samples gzipped) to ``dest``; returns ``dest``."""
    source, dest = Path(source), Path(dest)
    located = samples_file(source)
    if located is None:
        raise FileNotFoundError(f"{source}: no samples.jsonl (nor eval/samples.jsonl); is it an eval.py output?")
    samples, _ = located
    for needed in (source / "metrics.json", source / ".hydra" / "config.yaml"):
        if not needed.is_file():
            raise FileNotFoundError(f"{source}: {needed.relative_to(source)} is missing")
    (dest / ".hydra").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "metrics.json", dest / "metrics.json")
    shutil.copyfile(source / ".hydra" / "config.yaml", dest / ".hydra" / "config.yaml")
    # where the samples were (the evaluation itself, or <run>/eval/), so their metric keys keep their prefix
    target = dest / samples.parent.relative_to(source) / "samples.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.decompress(samples.read_bytes()) if samples.suffix == ".gz" else samples.read_bytes()
    target.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return dest


def archive_all(runs: Path, dest: Path) -> list[Path]:
    """Archive every evaluation under ``runs`` (each folder holding ``samples.jsonl``, or a run with
    ``eval/samples.jsonl``) to the same relative place under ``dest``: a study's samples, ready to commit."""
    runs, archived = Path(runs), []
    for samples in sorted(runs.rglob("samples.jsonl")):
        source = samples.parent
        if not (source / ".hydra" / "config.yaml").is_file() and source.name == "eval":
            source = source.parent  # a training run's final evaluation: its numbers are the run's
        archived.append(archive_eval(source, Path(dest) / source.relative_to(runs)))
    return archived


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="an eval.py output directory, or a run with <run>/eval/")
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    print(archive_eval(args.source, args.dest))


if __name__ == "__main__":
    main()
