"""Run bookkeeping: config and parameter counts at the start, final metrics at the end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def log_config(cfg: DictConfig, trainer: Trainer) -> None:
    """Send the resolved config to every logger, so runs are comparable on the dashboard."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(resolved)


def finish_run(cfg: DictConfig, trainer: Trainer) -> dict[str, float]:
    """Final metrics as plain floats, also written to ``<output_dir>/metrics.json``."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    out = Path(cfg.paths.output_dir)
    if trainer.is_global_zero and out.exists():
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
    return metrics
