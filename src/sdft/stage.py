"""The SDFT stage: generate (cached, in shards) -> filter -> the distilled dataset in the input's own schema.

``distill`` is called by ``distill.py`` (seed model from ``model_path``) and by ``train.py`` when an experiment has a
``distill`` node (seed model = the run's own backbone before training). Rows are joined to generations by id (the
row's ``id`` field, else its index), never by position. Under several processes (``torchrun distill.py``) each rank
generates its shards and rank 0 merges by id; every shard is seeded by its index, so the result does not depend on
the number of processes or on where a killed run stopped. Generations made elsewhere (``distill.py generations=``,
``src.sdft.saved``) go through the same ``prepare`` and ``merge``: only where the texts come from differs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from src.datamodules.sources import json_error, load_rows
from src.eval.engine.hf_engine import Sampling, generate_samples
from src.sdft.cache import digest, read_jsonl, weights_fingerprint, write_jsonl, write_text
from src.sdft.filters import Candidate
from src.utils.checks import require, require_choice

log = logging.getLogger(__name__)

RESPONSE_FIELDS = ("output", "answer", "response")
INSTRUCTION_FIELDS = ("instruction", "question", "prompt")


def distill(
    model: torch.nn.Module, tokenizer: Any, path: str, template: Any, cache_dir: str,
    generation: Sampling | None = None, filters: dict[str, Any] | None = None, fallback: str = "original",
    split: str = "train", subset: str | None = None, limit: int | None = None, response_field: str | None = None,
    shard_size: int = 64, force: bool = False, rank: int = 0, world_size: int = 1,
) -> Path:
    """Distil ``path``'s responses with ``model``; returns the distilled file (on every rank, after rank 0 wrote it).

    ``template`` is a ``DistillTemplate`` (``conf/distill/template/``); ``generation`` defaults to SDFT's decoding
    (sampling, T 0.95, top_p 0.7, top_k 50, 512 new tokens). ``split`` / ``subset`` name a hub dataset's split and
    configuration; ``limit`` keeps the first rows.
    """
    require(shard_size >= 1, "distill.shard_size", shard_size, "at least 1")
    generation = generation or Sampling(temperature=0.95, top_p=0.7, top_k=50, max_new_tokens=512)
    require(generation.n == 1, "distill.generation.n", generation.n, "1 (one rewrite per row)")
    rows, ids, field, filters = prepare(path, split, subset, limit, response_field, filters, fallback)
    gen_key = digest({"weights": weights_fingerprint(model), "template": dataclasses.asdict(template),
                      "generation": dataclasses.asdict(generation), "rows": digest(rows), "field": field,
                      "shard_size": shard_size})  # a shard's rows and seed depend on it
    out = Path(cache_dir) / gen_key
    data_key = digest({"filters": {n: [type(f).__name__, vars(f)] for n, f in filters.items()}, "fallback": fallback})
    target = out / f"distilled-{data_key}{dataset_suffix(path)}"
    if target.is_file() and not force:
        log.info("distill: reusing %s (same seed model, template, decoding, rows and filters)", target)
        return target
    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    _generate(model, tokenizer, rows, ids, field, template, generation, shards, shard_size, force, rank, world_size)
    if world_size > 1:
        torch.distributed.barrier()
    if rank == 0:
        generated = {r["id"]: r for s in sorted(shards.glob("*.jsonl")) for r in read_jsonl(s)}
        merge(rows, ids, field, generated, filters, fallback, target, path)
    if world_size > 1:
        torch.distributed.barrier()
    return target


def prepare(path: str, split: str, subset: str | None, limit: int | None, response_field: str | None,
            filters: dict[str, Any] | None, fallback: str) -> tuple[list[dict[str, Any]], list[str], str, dict]:
    """The rows, their ids, the response field and the active filters; every check that needs no generation, so
    both sources of generations (a model here, a file in ``src.sdft.saved``) fail on bad settings alike."""
    require_choice("distill.fallback", fallback, ("original", "drop"))
    rows = read_rows(path, split, subset, limit)
    ids = row_ids(rows, path)
    field = _check_fields(rows, ids, response_field, path)
    return rows, ids, field, {name: f for name, f in (filters or {}).items() if f is not None}


def dataset_suffix(path: str) -> str:
    """The distilled file's format: JSON for a JSON input, else JSON Lines (a hub dataset's rows too)."""
    return ".json" if Path(path).suffix == ".json" else ".jsonl"


def read_rows(path: str, split: str, subset: str | None, limit: int | None) -> list[dict[str, Any]]:
    """A local JSON / JSON Lines file as written (``datasets`` would give every row every key, None-filled, and may
    turn integers into floats, so the output could not keep the input's schema); anything else via ``load_rows``."""
    local = Path(path).expanduser()
    if local.is_file() and local.suffix in (".json", ".jsonl"):
        text = local.read_text(encoding="utf-8")
        try:
            if local.suffix == ".jsonl":
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                rows = json.loads(text)
        except json.JSONDecodeError:
            rows = None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"distill.path={path}: {json_error(local) or 'expected a list of JSON objects'}")
        return rows[:limit] if limit else rows
    return [dict(row) for row in load_rows(path, split, subset, limit)]


def row_ids(rows: list[dict[str, Any]], path: str) -> list[str]:
    ids = [str(row["id"]) if row.get("id") is not None else str(i) for i, row in enumerate(rows)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"distill.path={path}: row ids repeat; every row needs a unique id (or none: its index)")
    return ids


def _check_fields(rows: list[dict[str, Any]], ids: list[str], response_field: str | None, path: str) -> str:
    """The response field (``response_field``, else the first of ``RESPONSE_FIELDS`` the rows have); every row needs
    an instruction too. Checked before any generation."""
    field = response_field or next((f for f in RESPONSE_FIELDS if rows and f in rows[0]), None)
    if field is None:
        raise ValueError(f"distill.path={path}: no response field among {RESPONSE_FIELDS}; set distill.response_field")
    if not rows or field not in rows[0]:
        raise ValueError(f"distill.response_field={field!r} is not a field of distill.path={path} "
                         f"(fields: {sorted(rows[0]) if rows else 'no rows'})")
    lacking = [rid for row, rid in zip(rows, ids) if _instruction(row) is None]
    if lacking:
        raise ValueError(f"distill.path={path}: {len(lacking)} rows have no instruction field among "
                         f"{INSTRUCTION_FIELDS}, e.g. ids {lacking[:5]}")
    return field


def _generate(model, tokenizer, rows, ids, field, template, generation, shards, shard_size, force, rank, world):
    """Shard ``i`` holds rows ``[i * shard_size, (i + 1) * shard_size)`` and is generated with seed ``seed + i``;
    an existing shard is kept (a resumed run) unless ``force``."""
    for i in range(math.ceil(len(rows) / shard_size)):
        shard = shards / f"{i:06d}.jsonl"
        if i % world != rank or (shard.is_file() and not force):
            continue
        part = range(i * shard_size, min(len(rows), (i + 1) * shard_size))
        prompts = [(ids[j], template.render(tokenizer, _instruction(rows[j]), str(rows[j][field]),
                                            str(rows[j].get("input") or ""))) for j in part]
        samples = generate_samples(model, tokenizer, prompts, dataclasses.replace(generation, seed=generation.seed + i))
        write_jsonl(shard, [{"id": pid, "text": s[0].text, "num_tokens": s[0].num_tokens,
                             "truncated": s[0].truncated} for pid, s in samples.items()])
        log.info("distill: shard %d (%d rows) written", i, len(part))


def _instruction(row: dict[str, Any]) -> str | None:
    return next((str(row[f]) for f in INSTRUCTION_FIELDS if row.get(f) is not None), None)


def merge(rows, ids, field, generated, filters, fallback, target, path) -> None:
    """Join by id, filter, and write the dataset, ``provenance.jsonl`` and ``summary.json`` beside it.

    ``generated`` maps a row id to ``{"text", "num_tokens", "truncated"}`` (a shard's records, or a saved file's;
    the file's counts may be None)."""
    missing = [rid for rid in ids if rid not in generated]
    if missing:
        raise RuntimeError(f"distill: no generation for {len(missing)} rows of {path}, e.g. ids {missing[:5]}")
    out_rows, provenance = [], []
    rejections = {name: 0 for name in filters}
    for row, rid in zip(rows, ids):
        gen = generated[rid]
        candidate = Candidate(rid, str(row[field]).strip(), gen["text"].strip(), bool(gen["truncated"]))
        rejected_by = next((name for name, f in filters.items() if f.reject(candidate)), None)
        if rejected_by:
            rejections[rejected_by] += 1
        if rejected_by is None or fallback == "original":
            out_rows.append({**row, field: candidate.reference if rejected_by else candidate.response})
        provenance.append({"id": rid, "original": candidate.reference, "generated": candidate.response,
                           "kept": "original" if rejected_by else "generated", "rejected_by": rejected_by,
                           "num_tokens": gen["num_tokens"], "truncated": gen["truncated"]})
    write_jsonl(target.with_name(target.stem + ".provenance.jsonl"), provenance)
    summary = _summary(provenance, rejections, fallback, len(out_rows), target, path)
    write_text(target.with_name(target.stem + ".summary.json"), json.dumps(summary, indent=2) + "\n")
    _write_rows(target, out_rows)  # last, and atomic: the dataset file is what marks the distillation done
    log.info("distill: %s", summary)


def _summary(provenance, rejections, fallback, kept_rows, target, path) -> dict[str, Any]:
    replaced = sum(p["kept"] == "generated" for p in provenance)
    chars = lambda key: sum(len(p[key]) for p in provenance) / len(provenance)
    after = [p["generated"] if p["kept"] == "generated" else p["original"] for p in provenance]
    return {"input": path, "output": str(target), "rows": len(provenance), "rows_written": kept_rows,
            "replaced": replaced, "replaced_fraction": replaced / len(provenance), "rejections": rejections,
            "fallback": fallback, "mean_chars_before": chars("original"),
            "mean_chars_generated": chars("generated"), "mean_chars_after": sum(map(len, after)) / len(after)}


def _write_rows(target: Path, rows: list[dict[str, Any]]) -> None:
    if target.suffix == ".json":
        write_text(target, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    else:
        write_jsonl(target, rows)
