"""The run's defining config in every checkpoint, so a resume can check it continues the same run."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

KEY = "run_config"  # where a checkpoint keeps it

class SaveRunConfig(Callback):
    """Writes ``config`` (``src.run.resume_config.run_config``: model, objective, data, seed, as plain values, so
    checkpoints still load with ``weights_only=True``) as ``checkpoint["run_config"]``.

    The config is taken once, at the start of ``train.py``: SDFT later points ``data.path`` at its distilled file,
    and a resume must compare like with like.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = self.config
