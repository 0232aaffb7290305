"""AlpacaEval generation: the outputs in alpaca_eval's JSON format, for its judge to score elsewhere.

The judge is an API model (the SDFT and GEM repos leave its call commented out); nothing here calls it. The file
``alpaca_eval_outputs.json`` holds ``[{"instruction", "output", "generator", "dataset"}]``, one entry per prompt
(the first sample), ready for ``alpaca_eval --model_outputs``.
"""

from __future__ import annotations

from typing import Any

from src.eval.engine.hf_engine import Sample
from src.eval.tasks.task import EvalContext, GenerativeTask


class AlpacaEvalTask(GenerativeTask):
    def __init__(self, name: str = "alpaca_eval", generator: str = "posttrain", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.generator = generator

    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], ctx: EvalContext) -> dict[str, float]:
        firsts = [samples[row["id"]][0].text for row in rows]
        return {"mean_response_chars": sum(map(len, firsts)) / len(firsts)}

    def files(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]]) -> dict[str, Any]:
        return {"alpaca_eval_outputs.json": [
            {"instruction": self.instruction(row), "output": samples[row["id"]][0].text, "generator": self.generator,
             "dataset": row.get("dataset") or self.name} for row in rows]}
