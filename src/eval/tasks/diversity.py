"""Output diversity on a prompt set (the GEM paper's creative-writing evaluation): n samples per prompt.

Scores the responses only, by default: distinct-1..4, self-BLEU (each sample against the other n-1 as separate
references, sacrebleu) and embedding diversity (1 - mean pairwise cosine of sentence-transformers embeddings).
GEM's official script scores the templated prompt with the response and passes the other samples as a single
reference stream: ``score_prompt=true`` and ``self_bleu_variant=gem_official`` reproduce those.
Defaults follow GEM's poem setting: n 16, T 1.0, top_k 50, top_p 0.9, max 512 new tokens.
"""

from __future__ import annotations

from typing import Any

from src.eval.engine.hf_engine import Sample, Sampling
from src.eval.metrics.distinct import diversity_metrics
from src.eval.tasks.task import EvalContext, GenerativeTask
from src.utils.checks import require, require_choice


class DiversityTask(GenerativeTask):
    def __init__(self, name: str = "diversity", score_prompt: bool = False, self_bleu_variant: str = "corrected",
                 embedding: bool = True, embedding_model: str | None = None, generation: Sampling | None = None,
                 **kwargs: Any):
        generation = generation or Sampling(n=16, temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=512)
        require(generation.n >= 2, "eval.generation.n", generation.n, "at least 2 (diversity compares samples)")
        require_choice("eval.self_bleu_variant", self_bleu_variant, ("corrected", "gem_official"))
        super().__init__(name=name, generation=generation, **kwargs)
        self.score_prompt, self.self_bleu_variant = score_prompt, self_bleu_variant
        self.embedding, self.embedding_model = embedding, embedding_model

    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], ctx: EvalContext) -> dict[str, float]:
        groups = [[s.text for s in samples[row["id"]]] for row in rows]
        require(min(map(len, groups)) >= 2, "samples per prompt", min(map(len, groups)), "at least 2")
        prompts = [self.instruction(row) for row in rows]
        return diversity_metrics(groups, prompts=prompts, score_prompt=self.score_prompt,
                                 self_bleu_variant=self.self_bleu_variant, embedding=self.embedding,
                                 embedding_model=self.embedding_model)
