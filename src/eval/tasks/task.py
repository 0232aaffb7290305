"""What every evaluation task shares: where its responses come from (the engine, vLLM, or a predictions file),
and the per-sample records it reports.

A task is built from its ``eval=<task>`` option (generated from the task's signature in ``src/configs/store.py``
``_evals``; suites and ``ppl`` are YAML files in ``conf/eval/``) and run by ``src.eval.run.run_tasks`` with an
``EvalContext``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from src.eval.engine.hf_engine import Sample, Sampling, generate_samples
from src.eval.engine.prompts import TEMPLATES, render_prompt
from src.eval.tasks.inputs import field as row_field
from src.eval.tasks.inputs import load_predictions, load_task_rows, random_subset
from src.utils.checks import require, require_choice


@dataclass
class EvalContext:
    """The model under evaluation (None when scoring a predictions file) and how much to evaluate."""

    model: Any = None
    tokenizer: Any = None
    predictions: str | None = None  # JSON lines of saved generations, scored without a model
    model_path: str | None = None  # for engines that load the model themselves (vLLM)
    limit: int | None = None  # a prompt budget for every task (the validation callback's): a random subset of rows
    progress: bool = True
    template: str | None = None  # the model's training template, for tasks whose template is null (run_template.py)
    limit_seed: int = 0  # which random subset ``limit`` takes


@dataclass
class TaskResult:
    metrics: dict[str, float]  # unprefixed ("accuracy"); the runner adds "<task>/"
    samples: list[dict[str, Any]] = field(default_factory=list)  # one record per sample, for samples.jsonl
    files: dict[str, Any] = field(default_factory=dict)  # extra JSON files to write (file name -> content)


def prompt_budget(*limits: int | None) -> int | None:
    """The smallest of the limits that are set (a task's own, the run's, the callback's), or None: every row."""
    return min((limit for limit in limits if limit is not None), default=None)


class EvalTask:
    """A named evaluation; ``evaluate`` returns its metrics and samples."""

    def __init__(self, name: str):
        self.name = name

    def evaluate(self, ctx: EvalContext) -> TaskResult:
        raise NotImplementedError


class GenerativeTask(EvalTask):
    """Prompts from a file (``path``) answered by the model, n samples each, then scored by ``score``.

    ``template``: ``chat`` (the tokenizer's), ``alpaca``, ``raw`` or ``hh`` (``src.eval.engine.prompts``); null renders
    as the evaluated model was trained (``src.eval.run_template``), else ``chat``. ``system`` is a chat system message
    and ``prompt_suffix`` is appended to every instruction (e.g. an answer-format request). ``engine=vllm`` generates
    with vLLM from ``model_path`` (GPU, optional); the default ``hf`` engine uses the in-memory model.
    """

    prompt_fields: tuple[str, ...] = ("instruction", "question", "prompt", "goal")

    def __init__(self, name: str, path: str, split: str = "test", subset: str | None = None, limit: int | None = None,
                 template: str | None = None, system: str | None = None, prompt_suffix: str = "",
                 generation: Sampling | None = None, engine: str = "hf"):
        super().__init__(name)
        require(limit is None or limit >= 1, "eval.limit", limit, "at least 1 (or null for every row)")
        require_choice("eval.engine", engine, ("hf", "vllm"))
        if template is not None:
            require_choice("eval.template", template, TEMPLATES)
        self.path, self.split, self.subset, self.limit = path, split, subset, limit
        self.template, self.system, self.prompt_suffix, self.engine = template, system, prompt_suffix, engine
        self.generation = generation or Sampling()

    # --- what a task defines ----------------------------------------------------------------------------------
    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]],
              ctx: EvalContext) -> dict[str, float]:
        """Metrics over all samples; per-sample results go into each ``Sample.extra`` (they reach samples.jsonl)."""
        raise NotImplementedError

    def check_row(self, row: dict[str, Any]) -> None:
        """Raise on a row the task cannot score (e.g. no gold answer), naming it; called before any generation."""

    # --- shared machinery -------------------------------------------------------------------------------------
    def source_rows(self, ctx: EvalContext) -> list[dict[str, Any]]:
        """Every row of the task's data: the ids a predictions file may name (the evaluated ones a subset)."""
        return load_task_rows(self.path, self.split, self.subset)

    def files(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]]) -> dict[str, Any]:
        """Extra JSON files the task writes beside its report (file name -> content); none by default."""
        return {}

    def instruction(self, row: dict[str, Any]) -> str:
        return row_field(row, self.prompt_fields, self.path, "prompt") + self.prompt_suffix

    def prompt(self, row: dict[str, Any], ctx: EvalContext) -> str:
        template = self.template or ctx.template or "chat"
        return render_prompt(ctx.tokenizer, self.instruction(row), template, self.system, str(row.get("input") or ""))

    def responses(self, rows: list[dict[str, Any]], ctx: EvalContext, known_ids: set[str]) -> dict[str, list[Sample]]:
        ids = [row["id"] for row in rows]
        if ctx.predictions:
            saved = load_predictions(ctx.predictions, ids, known_ids)
            return {rid: [Sample(rid, i, text, None, None) for i, text in enumerate(saved[rid])] for rid in ids}
        if ctx.model is None:
            raise ValueError(f"eval task {self.name!r} needs model_path=<run dir | hf dir | hub id> or "
                             "predictions=<jsonl>")
        prompts = [(row["id"], self.prompt(row, ctx)) for row in rows]
        if self.engine == "vllm":
            from src.eval.engine.vllm_engine import generate_vllm

            return generate_vllm(ctx.model_path, ctx.tokenizer, prompts, self.generation)
        return generate_samples(ctx.model, ctx.tokenizer, prompts, self.generation, ctx.progress)

    def evaluate(self, ctx: EvalContext) -> TaskResult:
        every = self.source_rows(ctx)
        rows = random_subset(every, prompt_budget(self.limit, ctx.limit), ctx.limit_seed, self.name)
        for row in rows:  # a row the task cannot score fails before any generation
            self.instruction(row)
            self.check_row(row)
        samples = self.responses(rows, ctx, {row["id"] for row in every})
        metrics = self.score(rows, samples, ctx)
        everything = [s for rid in samples for s in samples[rid]]
        metrics.update(prompts=len(rows), samples_per_prompt=len(everything) / len(rows),
                       empty_responses=sum(not s.text.strip() for s in everything))
        if all(s.truncated is not None for s in everything):
            metrics["truncated_rate"] = sum(s.truncated for s in everything) / len(everything)
            metrics["mean_new_tokens"] = sum(s.num_tokens for s in everything) / len(everything)
        by_id = {row["id"]: row for row in rows}
        records = [{"task": self.name, "id": s.prompt_id, "sample": s.index, "prompt": self.instruction(
            by_id[s.prompt_id]), "response": s.text, "num_tokens": s.num_tokens, "truncated": s.truncated,
            **s.extra} for s in everything]
        return TaskResult(metrics, records, self.files(rows, samples))
