"""Per-prompt values of an evaluation's metrics, recomputed from its ``samples.jsonl`` (no generation).

A metric is "defined per prompt" when the task's number is the mean over prompts of a per-prompt value; those are
recomputed here from the stored sample records (``src.eval.tasks.task``: task, id, sample, prompt, response,
num_tokens, truncated and the task's fields: answer, correct, correct_<extractor>, score_<kind>, refusal):

- ``accuracy`` / ``accuracy_<extractor>`` / ``safe_rate`` / ``truncated_rate`` / ``mean_new_tokens``: the mean of
  ``correct`` / ``correct_<extractor>`` / ``refusal`` / ``truncated`` / ``num_tokens`` over the prompt's samples;
- ``seq_nll`` (``eval=ppl``): the scored sequence's token-mean NLL (a "prompt" there is a sequence);
- ``pass@k``, ``maj@k``, ``bon_logprob@k``, ``bon_reward@k``: ``src.eval.metrics.sampling_metrics`` on the prompt's
  samples. The gold answer is not stored: for maj@k it is the answer of a correct sample (none correct: no vote can
  win);
- ``distinct_<n>`` and ``self_bleu``: ``src.eval.metrics.distinct`` on the prompt's responses, with the task's
  ``score_prompt`` and ``self_bleu_variant`` read from the run's config.

Every recomputed metric is checked: the mean of its per-prompt values must equal the value in ``metrics.json``. One
that does not (a gold that the stored answers cannot tell, a setting the config does not show) is left out with the
reason, never reported with numbers that differ from the run's own. Not recomputed: ``embedding_diversity`` (it needs
the embedding model), lm-evaluation-harness samples (no prompt ``id``), and corpus-level metrics (``bleu``, ``ppl``).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.eval.metrics.distinct import distinct_n, with_prompts
from src.eval.metrics.sampling_metrics import best_of_n, majority_wins, pass_at_k
from src.eval.metrics.self_bleu import SELF_BLEU_VARIANTS

MEAN_FIELDS = {"accuracy": "correct", "safe_rate": "refusal", "truncated_rate": "truncated",
               "mean_new_tokens": "num_tokens", "seq_nll": "nll"}
AT_K = re.compile(r"^(pass|maj|bon_logprob|bon_reward)@(\d+)$")
TOLERANCE = 1e-6  # metrics.json holds full floats; a mean in another order differs in the last bits only

Records = list[dict[str, Any]]  # one prompt's sample records, in sample order


def samples_file(run_dir: Path) -> tuple[Path, str] | None:
    """``(samples.jsonl, metric key prefix)``: an evaluation's own, or a training run's final evaluation
    (``<run>/eval/``, whose metrics are ``eval/<task>/<metric>`` in the run's ``metrics.json``); None if neither.
    A gzipped ``samples.jsonl.gz`` (an archived evaluation, :mod:`src.eval.reports.archive`) counts too."""
    for folder, prefix in ((run_dir, ""), (run_dir / "eval", "eval/")):
        for name in ("samples.jsonl", "samples.jsonl.gz"):
            if (folder / name).is_file():
                return folder / name, prefix
    return None


def load_samples(path: Path) -> dict[str, dict[str, Records]]:
    """``{task: {prompt id: records in sample order}}``; records without a prompt ``id`` (harness logs) skipped."""
    found: dict[str, dict[str, Records]] = defaultdict(lambda: defaultdict(list))
    text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" else path.read_text("utf-8")
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            if "id" in record and "sample" in record:
                found[record["task"]][str(record["id"])].append(record)
    return {task: {pid: sorted(rs, key=lambda r: r["sample"]) for pid, rs in prompts.items()}
            for task, prompts in found.items()}


def task_settings(config: DictConfig | None, task: str) -> dict[str, Any]:
    """The diversity settings of ``task``: its node is ``eval`` (one task) or the suite's ``eval.tasks.<key>``."""
    node = config.get("eval") if config is not None else None
    if node is not None and "tasks" in node:
        node = next((n for k, n in node.tasks.items() if n is not None and n.get("name", k) == task), None)
    node = node or {}
    return {"score_prompt": bool(node.get("score_prompt", False)),
            "self_bleu_variant": str(node.get("self_bleu_variant", "corrected"))}


def prompt_function(metric: str, settings: dict[str, Any]) -> Callable[[Records], float | None] | None:
    """The per-prompt value of ``metric`` (unprefixed) from one prompt's records; None if it is not per prompt."""
    if metric in MEAN_FIELDS or metric.startswith("accuracy_"):
        key = MEAN_FIELDS.get(metric) or "correct_" + metric.removeprefix("accuracy_")
        return lambda records: _mean(records, key)
    if found := AT_K.match(metric):
        kind, k = found.group(1), int(found.group(2))
        return lambda records: _at_k(records, kind, k)
    texts = (lambda rs: with_prompts([_texts(rs)], [rs[0]["prompt"]])[0]) if settings["score_prompt"] else _texts
    if found := re.fullmatch(r"distinct_(\d+)", metric):
        return lambda records: distinct_n(texts(records), int(found.group(1)))
    if metric == "self_bleu" and settings["self_bleu_variant"] in SELF_BLEU_VARIANTS:
        return lambda records: SELF_BLEU_VARIANTS[settings["self_bleu_variant"]](texts(records))
    return None


def per_prompt_values(run_dir: Path, metrics: dict[str, float], config: DictConfig | None, keys: list[str]
                      ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """``({metric key: {prompt id: value}}, {metric key: why it is left out})`` for the ``keys`` of this run.

    Keys that are not per-prompt metrics of a task in the samples (``prompts``, ``seconds``) are in neither."""
    located = samples_file(run_dir)
    if located is None:
        return {}, {}
    path, prefix = located
    samples = load_samples(path)
    values, left_out = {}, {}
    for key in keys:
        task, _, metric = key.removeprefix(prefix).rpartition("/")
        if not key.startswith(prefix) or task not in samples or key not in metrics:
            continue
        function = prompt_function(metric, task_settings(config, task))
        if function is None:
            continue
        by_prompt = {pid: function(records) for pid, records in samples[task].items()}
        if any(value is None for value in by_prompt.values()):
            left_out[key] = f"{path} lacks the per-sample fields it needs"
            continue
        mean = sum(by_prompt.values()) / len(by_prompt)
        if abs(mean - metrics[key]) > TOLERANCE * max(1.0, abs(metrics[key])):
            left_out[key] = f"its mean over {path}'s prompts is {mean:.6g}, but metrics.json says {metrics[key]:.6g}"
            continue
        values[key] = by_prompt
    return values, left_out


def _mean(records: Records, key: str) -> float | None:
    values = [r.get(key) for r in records]
    if any(v is None or not isinstance(v, (bool, int, float)) for v in values):
        return None
    return sum(values) / len(values)


def _texts(records: Records) -> list[str]:
    return [r["response"] for r in records]


def _at_k(records: Records, kind: str, k: int) -> float | None:
    correct = [r.get("correct") for r in records]
    if None in correct or not 1 <= k <= len(records):
        return None
    if kind == "pass":
        return pass_at_k(len(correct), sum(map(bool, correct)), k)
    if kind == "maj":
        answers = tuple(r.get("answer") for r in records)
        gold = next((r.get("answer") for r in records if r["correct"]), None)  # not stored: a correct sample's
        return _majority(answers, gold)[k - 1]
    scores = [r.get(f"score_{kind.removeprefix('bon_')}") for r in records]
    if None in scores:
        return None
    return best_of_n([scores], [correct], [k])[k]


@lru_cache(maxsize=4096)
def _majority(answers: tuple[str | None, ...], gold: str | None) -> list[float]:
    """Every k at once for one prompt: maj@2 and maj@8 of the same prompt count its subsets once."""
    return majority_wins(list(answers), gold)
