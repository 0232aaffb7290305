"""``train.py ... eval=<task | suite>``: the full evaluation of the trained weights, in memory, after training.

Writes the evaluation report into ``<run dir>/eval/`` (as ``eval.py`` would), adds ``eval/<task>/<metric>`` to
the run's ``metrics.json`` and sends them to the run's loggers at the final step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from omegaconf import DictConfig

from src.eval.keys import task_nodes
from src.eval.reports.report import write_report
from src.eval.run import as_tasks, run_tasks
from src.eval.run_template import announce, data_template
from src.eval.tasks.task import EvalContext
from src.utils.command import command_line
from src.utils.instantiate import instantiate


def evaluate_after_fit(cfg: DictConfig, module: LightningModule, datamodule: Any, trainer: Trainer) -> dict[str, float]:
    out = Path(cfg.paths.output_dir)
    tasks, nodes = as_tasks(instantiate(cfg.eval)), task_nodes(cfg.eval)
    template = data_template(cfg.data)  # tasks with template: null prompt as the run trained
    ctx = EvalContext(module.model, datamodule.tokenizer, progress=False, template=template.name)
    header = "; ".join(filter(None, [f"the trained weights of `{command_line()}` (step {trainer.global_step})",
                                     announce(tasks, template, nodes)]))
    metrics, samples, files = run_tasks(tasks, ctx, nodes)  # every rank generates: a sharded model needs them all
    flat = {f"eval/{task}/{key}": value for task, values in metrics.items() for key, value in values.items()}
    if trainer.is_global_zero:
        write_report(out / "eval", metrics, samples, files, header)
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=trainer.global_step)
            logger.save()
        path = out / "metrics.json"
        previous = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**previous, **flat}, indent=2, sort_keys=True))
    return flat
