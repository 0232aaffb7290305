"""Checks that run before any data is loaded or any model is built, so a bad setting fails in a second, by name."""

from __future__ import annotations

import logging
import math

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.callbacks.precision_guard import refuse_half_precision
from src.utils.checks import require

log = logging.getLogger(__name__)

HALF_DTYPES = ("bfloat16", "float16")
HALF_PRECISIONS = ("bf16-true", "16-true")


def preflight(cfg: DictConfig) -> None:
    """Build the optimizer and the schedule on a stand-in parameter, and check the weights' precision."""
    check_optimizer(cfg.module)
    check_half_precision(cfg)


def check_optimizer(module: DictConfig) -> None:
    """``module.optimizer`` and ``module.scheduler`` as the run will build them, errors naming their keys."""
    lr = module.optimizer.get("lr")
    require(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, "module.optimizer.lr", lr,
            "a finite learning rate > 0")
    stand_in = torch.nn.Parameter(torch.zeros(1))
    try:
        optimizer = instantiate(module.optimizer)([stand_in])
    except (ValueError, TypeError) as err:  # torch's own range checks ("Invalid beta parameter ...")
        raise ValueError(f"module.optimizer ({module.optimizer.get('_target_')}): {err}") from None
    if module.get("scheduler") is not None:
        instantiate(module.scheduler)(optimizer, num_training_steps=100)  # its checks name module.scheduler.*


def check_half_precision(cfg: DictConfig) -> None:
    """A full fine-tune whose trainable weights are bf16/fp16 loses every update below their resolution (AdamW
    then has no fp32 master copy). Refused unless ``pure_half_precision=true``, which warns instead."""
    dtype = cfg.model.get("dtype")
    precision = str(cfg.trainer.get("precision"))
    if cfg.model.get("lora") or (dtype not in HALF_DTYPES and precision not in HALF_PRECISIONS):
        return
    what = f"model.dtype={dtype}" if dtype in HALF_DTYPES else f"trainer.precision={precision}"
    refuse_half_precision(f"{what} trains pure half-precision weights", bool(cfg.get("pure_half_precision")))
