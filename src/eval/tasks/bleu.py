"""Prompt -> reference generation scored with corpus BLEU and chrF (``sacrebleu``), e.g. the convex paper's WMT.

Rows carry the source in one of ``prompt_fields`` and the reference in one of ``reference_fields``; the first
sample of each prompt is the hypothesis. sacrebleu's default tokenizer (13a) and settings, so the numbers compare
with published ``sacrebleu`` scores.
"""

from __future__ import annotations

from typing import Any

from src.eval.engine.hf_engine import Sample
from src.eval.tasks.inputs import field
from src.eval.tasks.task import EvalContext, GenerativeTask


class ReferenceTask(GenerativeTask):
    prompt_fields = ("prompt", "instruction", "source", "src")
    reference_fields = ("reference", "output", "target", "tgt")

    def __init__(self, name: str = "bleu", template: str = "raw", **kwargs: Any):
        super().__init__(name=name, template=template, **kwargs)

    def check_row(self, row: dict[str, Any]) -> None:
        field(row, self.reference_fields, self.path, "reference")

    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], ctx: EvalContext) -> dict[str, float]:
        import sacrebleu

        hypotheses = [samples[row["id"]][0].text.strip() for row in rows]
        references = [[field(row, self.reference_fields, self.path, "reference") for row in rows]]
        return {"bleu": sacrebleu.corpus_bleu(hypotheses, references).score,
                "chrf": sacrebleu.corpus_chrf(hypotheses, references).score}
