"""Train one experiment: ``python train.py experiment=<name> [key=value ...]``; ``-m`` sweeps.

Reads top to bottom: checks, (SDFT distillation), data, backbone, objective, callbacks, loggers, trainer,
(validate), fit, (evaluate). The run ends on a validation (``FinalValidation``), and ``main`` returns its
``optimized_metric`` to Hydra's sweepers (``eval/<task>/<metric>`` too, with ``eval=<task>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from src.callbacks.precision_guard import HalfPrecisionGuard
from src.callbacks.rng_state import RNGState
from src.callbacks.run_config import SaveRunConfig
from src.callbacks.step_numbers import StepNumbers
from src.configs import register_configs
from src.eval.after_fit import evaluate_after_fit
from src.run.cli import run_with_key_help
from src.run.outputs import announce_run, finish_run, log_config
from src.run.preflight import preflight
from src.run.ranks import job_ranks
from src.run.resume import resolve_ckpt_path
from src.run.resume_config import check_resume_config, run_config
from src.sdft.training import distill_for_training
from src.utils.instantiate import instantiate, instantiate_all

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "conf"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
register_configs()


def train(cfg: DictConfig) -> dict[str, float]:
    cfg.ckpt_path = resolve_ckpt_path(cfg)  # before anything reads it (the CSV logger keeps rows up to it)
    announce_run(cfg)
    defining = run_config(cfg)  # model, objective, data, seed: saved in checkpoints, and a resume must match them
    check_resume_config(cfg, defining)
    preflight(cfg)  # optimizer, schedule and precision settings fail here, before any data or model
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg.cpu_threads)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("distill"):  # SDFT: the seed model rewrites the training responses first (cached)
        cfg.data.path = distill_for_training(cfg)
        L.seed_everything(cfg.seed, workers=True)  # the same initial state as the plain-SFT baseline
    datamodule = instantiate(cfg.data)
    backbone = instantiate(cfg.model, tokenizer=datamodule.tokenizer)
    module = instantiate(cfg.module, model=backbone)
    # Always on: the precision check, the random state in checkpoints (dropout resumes exactly), rows numbered
    # by optimizer steps done, as checkpoints are, and the run config in checkpoints (a resume compares it).
    callbacks = instantiate_all(cfg.get("callbacks")) + [HalfPrecisionGuard(cfg.pure_half_precision), RNGState(),
                                                         StepNumbers(), SaveRunConfig(defining)]
    loggers = instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_config(cfg, trainer)

    if cfg.get("validate_before_fit") and not cfg.get("ckpt_path"):
        trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = finish_run(cfg, trainer)
    if cfg.get("eval"):  # eval=<task | suite>: the full evaluation of the trained weights, into <run dir>/eval/
        metrics |= evaluate_after_fit(cfg, module, datamodule, trainer)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    with job_ranks(ROOT / "train.py"):  # DDP's ranks 1.. run this job's values, also in a sweep (src/run/ranks.py)
        metrics = train(cfg)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    run_with_key_help(main, CONFIG_DIR, "train")
