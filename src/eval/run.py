"""Run evaluation tasks on one model (or one predictions file) and write the report; shared by ``eval.py``,
``train.py ... eval=<task>`` and the validation callback."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.eval.keys import named_at
from src.eval.reports.report import write_report
from src.eval.tasks.task import EvalContext, EvalTask

log = logging.getLogger(__name__)


def as_tasks(node: Any) -> dict[str, EvalTask]:
    """``{name: task}`` from an instantiated ``eval`` node: one task, or a suite (``tasks: {name: task}``)."""
    if isinstance(node, EvalTask):
        return {node.name: node}
    tasks = node.get("tasks") if hasattr(node, "get") else None
    tasks = {name: task for name, task in (tasks or {}).items() if task is not None}  # eval.tasks.<name>=null drops
    if not tasks or not all(isinstance(t, EvalTask) for t in tasks.values()):
        raise ValueError("eval must be one task (a _target_ in src.eval.tasks) or a suite with tasks: {name: task}")
    return {task.name: task for task in tasks.values()}


def run_tasks(tasks: dict[str, EvalTask], ctx: EvalContext, nodes: dict[str, tuple[str, DictConfig]] | None = None
              ) -> tuple[dict[str, dict[str, float]], list, dict]:
    """``(metrics per task, sample records, extra files)``; each task's wall time is a metric (``seconds``).

    ``nodes``: each task's config key and node (``src.eval.keys.task_nodes``), so its errors name its keys."""
    metrics, samples, files = {}, [], {}
    for name, task in tasks.items():
        start = time.perf_counter()
        with named_at(*nodes[name]) if nodes and name in nodes else nullcontext():
            result = task.evaluate(ctx)
        metrics[name] = {**result.metrics, "seconds": round(time.perf_counter() - start, 2)}
        samples += result.samples
        files.update(result.files)
        log.info("%s: %s", name, {k: v for k, v in metrics[name].items() if "@" not in k})
    return metrics, samples, files


def evaluate_to(out_dir: Path, tasks: dict[str, EvalTask], ctx: EvalContext, header: str,
                nodes: dict[str, tuple[str, DictConfig]] | None = None) -> dict[str, float]:
    metrics, samples, files = run_tasks(tasks, ctx, nodes)
    flat = write_report(out_dir, metrics, samples, files, header)
    log.info("evaluation written to %s (metrics.json, results.md, samples.jsonl)", out_dir)
    return flat
