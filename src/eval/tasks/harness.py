"""Any lm-evaluation-harness task on the evaluated model, in memory (``eval=lm_eval eval.tasks=[...]``).

The papers' general-ability suite (mmlu, truthfulqa, arc, hellaswag, winogrande, gsm8k) needs the hub for its data;
``include_path`` adds a folder of custom task YAMLs (a local jsonl works offline). See
``src.eval.engine.lm_eval_harness``.
"""

from __future__ import annotations

from src.eval.engine.lm_eval_harness import run_lm_eval
from src.eval.tasks.task import EvalContext, EvalTask, TaskResult, prompt_budget

# The general-ability suite of the SDFT evaluation (its eval_general_knowledge.py reads acc of each).
HARNESS_SUITE = ("mmlu", "truthfulqa", "ai2_arc", "hellaswag", "winogrande")


class HarnessTask(EvalTask):
    def __init__(self, tasks: list[str], name: str = "lm_eval", include_path: str | None = None,
                 num_fewshot: int | None = None, limit: int | None = None, batch_size: int = 8, seed: int = 0):
        super().__init__(name)
        if not tasks:
            raise ValueError("eval.tasks is empty: name lm-evaluation-harness tasks, e.g. eval.tasks=[arc_easy]")
        self.tasks, self.include_path, self.num_fewshot = list(tasks), include_path, num_fewshot
        self.limit, self.batch_size, self.seed = limit, batch_size, seed

    def evaluate(self, ctx: EvalContext) -> TaskResult:
        if ctx.model is None:
            raise ValueError("eval=lm_eval scores a model: give model_path=<run dir | hf dir | hub id>")
        metrics, samples = run_lm_eval(ctx.model, ctx.tokenizer, self.tasks, self.include_path, self.num_fewshot,
                                       prompt_budget(self.limit, ctx.limit), self.batch_size, seed=self.seed,
                                       log_samples=True)
        return TaskResult(metrics, [{"task": self.name, **s} for s in samples])
