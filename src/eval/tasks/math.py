"""Math word problems with a final answer (GSM8K, MultiArith, the toy world): accuracy, pass@k, maj@k, best-of-n.

With one greedy sample per prompt, ``accuracy`` is the paper's accuracy. With n samples it is the mean correctness
of all samples (pass@1), and every k <= n adds, each exact over every k of the n samples
(``src.eval.metrics.sampling_metrics``, so each is the share of correct samples at k=1): ``pass@k`` (Chen et al. 2021's
unbiased estimator), ``maj@k`` (self-consistency: the most common answer of k samples; unparseable samples do not
vote, a tie goes to the earlier sample), ``bon_logprob@k`` (the sample with the highest mean token log-prob under the
evaluated policy) and, with ``reward_model``, ``bon_reward@k`` (the sample the reward model scores highest). Answers
are extracted with ``extractor`` (SDFT's last-number rule by default, see ``src.eval.metrics.answers``);
``compare_extractor`` scores every sample a second way too and reports ``accuracy_<extractor>`` and the number of
``disagreements``. ``diversity`` adds distinct-n and self-BLEU of the same samples (``src.eval.metrics.distinct``).
"""

from __future__ import annotations

import logging
from typing import Any

from src.eval.engine.hf_engine import Sample
from src.eval.metrics.answers import EXTRACTORS, answers_match, extract
from src.eval.metrics.distinct import diversity_metrics
from src.eval.metrics.sampling_metrics import best_of_n, maj_at_k, mean_pass_at_k
from src.eval.metrics.scoring import load_reward_model, policy_mean_logprobs
from src.eval.tasks.inputs import field
from src.eval.tasks.task import EvalContext, GenerativeTask
from src.utils.checks import require_choice

log = logging.getLogger(__name__)


class AnswerTask(GenerativeTask):
    answer_fields: tuple[str, ...] = ("answer", "output", "final_ans")

    def __init__(self, name: str = "gsm8k", extractor: str = "last_number", compare_extractor: str | None = None,
                 reward_model: str | None = None, diversity: bool = False, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.diversity = diversity
        require_choice("eval.extractor", extractor, EXTRACTORS)
        if compare_extractor is not None:
            require_choice("eval.compare_extractor", compare_extractor, EXTRACTORS)
        self.extractor, self.compare_extractor, self.reward_model = extractor, compare_extractor, reward_model

    def gold(self, row: dict[str, Any]) -> str:
        return field(row, self.answer_fields, self.path, "gold answer")

    def check_row(self, row: dict[str, Any]) -> None:
        if extract(self.gold(row), self.extractor) is None:
            raise ValueError(f"eval.path={self.path}: the gold answer of row id {row['id']!r} has no answer that "
                             f"eval.extractor={self.extractor} can read: {self.gold(row)[-80:]!r}")

    def score(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], ctx: EvalContext) -> dict[str, float]:
        gold = {row["id"]: self.gold(row) for row in rows}
        for rid, group in samples.items():
            for s in group:
                s.extra.update(answer=extract(s.text, self.extractor), correct=answers_match(gold[rid], s.text,
                                                                                            self.extractor))
                if self.compare_extractor:
                    s.extra[f"correct_{self.compare_extractor}"] = answers_match(gold[rid], s.text,
                                                                                 self.compare_extractor)
        flat = [s for group in samples.values() for s in group]
        metrics = {"accuracy": sum(s.extra["correct"] for s in flat) / len(flat)}
        if self.compare_extractor:
            key = f"correct_{self.compare_extractor}"
            metrics[f"accuracy_{self.compare_extractor}"] = sum(s.extra[key] for s in flat) / len(flat)
            metrics["disagreements"] = sum(s.extra[key] != s.extra["correct"] for s in flat)
        n = min(len(group) for group in samples.values())
        if n > 1:
            metrics.update(self._at_k(rows, samples, gold, n, ctx))
        if n > 1 and self.diversity:  # the same samples' diversity: accuracy against diversity in one run
            metrics.update(diversity_metrics([[s.text for s in samples[row["id"]]] for row in rows], embedding=False))
        return metrics

    def _at_k(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]], gold: dict[str, str], n: int,
              ctx: EvalContext) -> dict[str, float]:
        ids = [row["id"] for row in rows]
        ks = list(range(1, n + 1))
        correct = [[s.extra["correct"] for s in samples[rid]] for rid in ids]
        answers = [[s.extra["answer"] for s in samples[rid]] for rid in ids]
        gold_answers = [extract(gold[rid], self.extractor) for rid in ids]
        metrics = {f"pass@{k}": v for k, v in mean_pass_at_k(correct, ks).items()}
        metrics.update({f"maj@{k}": v for k, v in maj_at_k(answers, gold_answers, ks).items()})
        if ctx.model is not None:
            metrics.update(self._best_of_n("logprob", self._policy_scores(rows, samples, ctx), correct, ks, ids,
                                           samples))
        else:
            log.info("%s: no model (predictions file), so no best-of-n by the policy's log-prob", self.name)
        if self.reward_model:
            rm = load_reward_model(self.reward_model)
            instructions = [self.instruction(row) for row in rows for _ in samples[row["id"]]]
            scores = rm.score(instructions, [s.text for rid in ids for s in samples[rid]])
            metrics.update(self._best_of_n("reward", scores, correct, ks, ids, samples))
        return metrics

    def _policy_scores(self, rows: list[dict[str, Any]], samples: dict[str, list[Sample]],
                       ctx: EvalContext) -> list[float]:
        prompts = [self.prompt(row, ctx) for row in rows for _ in samples[row["id"]]]
        flat = [s for row in rows for s in samples[row["id"]]]
        return policy_mean_logprobs(ctx.model, ctx.tokenizer, prompts, [s.text for s in flat],
                                    self.generation.batch_size, [s.end_token for s in flat])

    @staticmethod
    def _best_of_n(kind: str, flat_scores: list[float], correct: list[list[bool]], ks: list[int], ids: list[str],
                   samples: dict[str, list[Sample]]) -> dict[str, float]:
        per_prompt, at = [], 0
        for rid in ids:
            group = samples[rid]
            per_prompt.append(flat_scores[at:at + len(group)])
            for s, value in zip(group, per_prompt[-1]):
                s.extra[f"score_{kind}"] = value
            at += len(group)
        return {f"bon_{kind}@{k}": v for k, v in best_of_n(per_prompt, correct, ks).items()}
