"""Run any lm-evaluation-harness task (EleutherAI/lm-evaluation-harness, ``lm_eval`` >= 0.4) on an in-memory causal LM.

``lm_eval.models.huggingface.HFLM`` accepts an already-built model as ``pretrained``: it then skips loading, takes
``model.device`` and ``model.config`` as they are (its ``device`` argument is ignored), calls ``model.eval()`` and
scores with ``model(input_ids).logits`` under ``no_grad``. It checks no type, so a peft ``PeftModel`` works unmerged:
attribute access falls through to the base model and the forward pass applies the adapters.

Three things HFLM and ``simple_evaluate`` change are put back here, so the call is safe in the middle of training:
each submodule's train/eval mode, the model's device when ``device`` moves it, and the global RNGs that
``simple_evaluate`` reseeds (python, numpy, torch).

Hub tasks (``mmlu``, ``arc_easy``) download their datasets; offline, point ``include_path`` at a folder of task YAMLs
over local files (``tests/assets/lm_eval_tasks/toy_choice.yaml``). ``datasets`` resolves a relative ``data_files``
path against the working directory, not the YAML's folder.
"""

from __future__ import annotations

import difflib
import functools
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

_INSTALL = "lm-evaluation-harness is not installed: `pip install lm-eval`"
_HINT = (
    "Built-in hub tasks need the Hugging Face hub (or a warm datasets cache) to be reachable; "
    "include_path can point at a folder of custom task YAMLs over local files."
)
_SAMPLE_FIELDS = ("doc_id", "filter", "target", "filtered_resps")  # small and enough to recompute acc; not the doc


def run_lm_eval(
    model: Any,
    tokenizer: Any,
    tasks: list[str],
    include_path: str | None = None,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    batch_size: int = 8,
    device: str | None = None,
    seed: int = 0,
    log_samples: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """Score ``model`` on lm-eval ``tasks``; return ``{"<task>/<metric>": value}`` and (``log_samples``) per-doc logs.

    ``limit`` is a doc count (int) or a fraction of each task (float). ``seed`` seeds everything lm-eval seeds,
    the few-shot sampler included. Per-sample logs hold ``task``, ``doc_id``, ``filter``, ``target``,
    ``filtered_resps`` (for multiple choice: one ``[loglikelihood, is_greedy]`` per choice) and the metric values.
    """
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    task_manager = _task_manager(str(Path(include_path).resolve()) if include_path else None)
    _check_task_names(tasks, task_manager, include_path)

    with _restored(model, device):
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        try:
            out = lm_eval.simple_evaluate(
                model=lm, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit, task_manager=task_manager,
                random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
                log_samples=log_samples,
            )
        except ConnectionError as e:
            raise ConnectionError(f"lm-eval could not fetch the data of {tasks}: {e}. {_HINT}") from e
    if out is None:  # simple_evaluate returns results on LOCAL_RANK 0 only
        return {}, []
    samples = [_sample(task, s) for task, logs in out.get("samples", {}).items() for s in logs] if log_samples else []
    return flatten_results(out["results"]), samples


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None):
    """Index the built-in tasks (~6 s, 14k YAMLs) and ``include_path`` once per process; later YAMLs go unseen."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def _check_task_names(tasks: list[str], task_manager: Any, include_path: str | None) -> None:
    """lm-eval's own error is a bare ``KeyError("Spec 'x' is not a registered ...")``, raised after model setup."""
    known = set(task_manager.all_tasks)  # tasks, groups and tags
    for name in tasks:
        if name in known or Path(name).is_file():  # lm-eval also takes a path to one task YAML
            continue
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"Unknown lm-eval task {name!r} (include_path={include_path!r}).{hint} {_HINT}")


def flatten_results(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"arc_easy": {"acc,none": .5, "acc_stderr,none": .1, "alias": ..}}`` -> ``{"arc_easy/acc": .5, ..}``.

    lm-eval keys are ``<metric>,<filter>``; the filter joins the name unless it is ``none``
    (``exact_match,strict-match`` -> ``exact_match_strict-match``) and ``_stderr`` stays last. Keys without a filter
    (``alias``, ``name``, ``sample_len``) and non-numbers (stderr ``"N/A"``) are dropped.
    """
    flat = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            metric, sep, filter_name = key.partition(",")
            if not sep or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue
            stderr = metric.endswith("_stderr")
            name = metric.removesuffix("_stderr") + ("" if filter_name == "none" else f"_{filter_name}")
            flat[f"{task}/{name}{'_stderr' if stderr else ''}"] = float(value)
    return flat


def _sample(task: str, log: dict[str, Any]) -> dict[str, Any]:
    metrics = {m: _jsonable(log[m]) for m in log.get("metrics", []) if m in log}
    return {"task": task, **{k: _jsonable(log.get(k)) for k in _SAMPLE_FIELDS}, **metrics}


def _jsonable(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python, anything else unknown to ``str``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@contextmanager
def _restored(model: torch.nn.Module, device: str | None):
    """Undo what the evaluation changes: per-module train flags (HFLM calls ``.eval()``), device, global RNGs."""
    modes = [(m, m.training) for m in model.modules()]  # per module: a frozen submodule may be in eval on purpose
    first = next(model.parameters(), None)
    home = first.device if first is not None else None
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng():  # simple_evaluate reseeds torch globally
            if device is not None:
                model.to(device)  # HFLM ignores its device argument for a built model
            yield
    finally:
        if device is not None and home is not None:
            model.to(home)
        for module, training in modes:
            module.training = training
        random.setstate(py_state)
        np.random.set_state(np_state)
