"""Train one experiment: ``python train.py experiment=<name> [key=value ...]``; ``-m`` sweeps.

Reads top to bottom: data, backbone, objective, callbacks, loggers, trainer, (validate), fit. Returns the
``optimized_metric`` so Hydra sweepers can optimise it.
"""

from __future__ import annotations

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from src.utils.instantiate import instantiate, instantiate_all
from src.utils.run import finish_run, log_config


def train(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg.cpu_threads)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    backbone = instantiate(cfg.model, tokenizer=datamodule.tokenizer)
    module = instantiate(cfg.module, model=backbone)
    callbacks = instantiate_all(cfg.get("callbacks"))
    loggers = instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_config(cfg, trainer)

    if cfg.get("validate_before_fit") and not cfg.get("ckpt_path"):
        trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return finish_run(cfg, trainer)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
