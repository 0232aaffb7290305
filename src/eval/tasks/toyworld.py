"""The toy world's held-out problems as a math task: what the tiny models of the tests and studies can be asked."""

from __future__ import annotations

from typing import Any

from src.eval.tasks.math import AnswerTask
from src.eval.tasks.task import EvalContext
from src.toyworld.tasks import make_problems


class ToyWorldTask(AnswerTask):
    """``num_prompts`` held-out toy problems (ids are their indices), scored by the toy answer rule: the answer
    after the last "The answer is", the form toy-trained models learn. A model that answers in another form ("11 + 2
    = 13") is scored wrong: evaluate it with ``eval=gsm8k``'s last-number rule instead.

    With ``path`` unset they are generated (deterministic in ``seed``); ``path=<file>`` reads rows in the GSM8K
    format instead. ``limit`` takes a random subset of the ``num_prompts``, as for a file.
    """

    def __init__(self, name: str = "toyworld", num_prompts: int = 200, seed: int = 0, kinds: list[str] | None = None,
                 path: str | None = None, extractor: str = "toyworld", **kwargs: Any):
        super().__init__(name=name, path=path or "toyworld", extractor=extractor, **kwargs)
        self.num_prompts, self.seed, self.kinds = num_prompts, seed, tuple(kinds) if kinds else None

    def source_rows(self, ctx: EvalContext) -> list[dict[str, Any]]:
        if self.path != "toyworld":
            return super().source_rows(ctx)
        return toy_rows(self.num_prompts, self.seed, self.kinds)


def toy_rows(n: int, seed: int = 0, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """``[{"id", "question", "answer"}]``: the gold answer in the GSM8K convention ("The answer is X.")."""
    problems = make_problems(n, "test", seed, kinds)
    return [{"id": str(i), "question": p.prompt, "answer": f"The answer is {p.answer}.", "responses": list(p.responses)}
            for i, p in enumerate(problems)]

