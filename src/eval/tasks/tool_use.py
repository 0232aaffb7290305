"""SDFT's tool-use task (OpenFunctions): a response passes if it contains the gold call ``name(args)``, normalised.

Rows are ``{"instruction", "output"}`` (``output`` is the one gold call); SDFT prompts with the Alpaca template.
The rule is ``src.eval.metrics.tool_calls.call_in_response``. With n samples, ``pass@k`` for every k <= n.
"""

from __future__ import annotations

from typing import Any

from src.eval.engine.hf_engine import Sample
from src.eval.metrics.sampling_metrics import mean_pass_at_k
from src.eval.metrics.tool_calls import call_in_response, gold_call
from src.eval.tasks.inputs import field
from src.eval.tasks.task import EvalContext, GenerativeTask


class ToolCallTask(GenerativeTask):
    def __init__(self, name: str = "openfunction", template: str = "alpaca", **kwargs: Any):
        super().__init__(name=name, template=template, **kwargs)

    def gold(self, row: dict[str, Any]) -> str:
        return field(row, ("output", "answer"), self.path, "gold call")

    def check_row(self, row: dict[str, Any]) -> None:
        try:
            gold_call(self.gold(row))
        except ValueError as err:
            raise ValueError(f"eval.path={self.path}: row id {row['id']!r}: {err}") from None

    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], ctx: EvalContext) -> dict[str, float]:
        gold = {row["id"]: self.gold(row) for row in rows}
        for rid, group in samples.items():
            for s in group:
                s.extra["correct"] = call_in_response(gold[rid], s.text)
        correct = [[s.extra["correct"] for s in samples[row["id"]]] for row in rows]
        metrics = {"accuracy": sum(map(sum, correct)) / sum(map(len, correct))}
        n = min(map(len, correct))
        if n > 1:
            metrics.update({f"pass@{k}": v for k, v in mean_pass_at_k(correct, range(1, n + 1)).items()})
        return metrics
