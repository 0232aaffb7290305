"""Evaluate one model, or score saved generations: ``python eval.py eval=<task | suite> model_path=<...>``.

Reads top to bottom: load the model (or none, with ``predictions=``), build the tasks, run them, write
``metrics.json``, ``results.md``, ``samples.jsonl`` and plots into the run directory, and send the metrics to the
loggers (``logger=wandb``: also a table of the samples). ``-m`` sweeps over checkpoints and decoding settings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from src.configs import register_configs
from src.eval.engine.models import load_model
from src.eval.keys import task_nodes
from src.eval.run import as_tasks, evaluate_to
from src.eval.run_template import announce, run_template
from src.eval.tasks.task import EvalContext
from src.run.cli import run_with_key_help
from src.utils.command import command_line
from src.utils.instantiate import instantiate, instantiate_all

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "conf"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
register_configs()
log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    out_dir = Path(cfg.paths.output_dir)
    log.info("run directory: %s", out_dir.resolve())
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg.cpu_threads)
    if cfg.predictions and cfg.model_path:
        raise ValueError("give model_path= (generate, then score) or predictions= (score saved generations), not both")
    tasks = as_tasks(instantiate(cfg.eval))  # before the model: a bad task setting fails fast
    nodes = task_nodes(cfg.eval)
    model = tokenizer = template = None
    source = f"predictions `{cfg.predictions}`"
    if cfg.model_path:
        template = run_template(cfg.model_path)  # the prompts the model was trained on, from its run's config
        source = "; ".join(filter(None, [f"model `{cfg.model_path}`", announce(tasks, template, nodes)]))
        model, tokenizer = load_model(cfg.model_path, cfg.dtype, cfg.device, cfg.base_model_path)
    ctx = EvalContext(model, tokenizer, cfg.predictions, cfg.model_path, cfg.limit, cfg.progress,
                      template.name if template else None, cfg.limit_seed)
    metrics = evaluate_to(out_dir, tasks, ctx, f"{source}\n\n`{command_line('eval.py')}`", nodes)
    log_metrics(instantiate_all(cfg.get("logger")), metrics, out_dir / "samples.jsonl")
    return metrics


def log_metrics(loggers: list, metrics: dict[str, float], samples_path: Path) -> None:
    """Metrics to every logger; W&B also gets the samples as a table."""
    for logger in loggers:
        logger.log_metrics({f"eval/{key}": value for key, value in metrics.items()})
        if type(logger).__name__ == "WandbLogger":
            from src.eval.reports.wandb_table import samples_table

            logger.experiment.log({"eval/samples": samples_table(samples_path)})
        logger.finalize("success")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    metrics = evaluate(cfg)
    return next(iter(metrics.values()), None)  # a sweeper's objective: the first metric of the first task


if __name__ == "__main__":
    run_with_key_help(main, CONFIG_DIR, "evaluate")
