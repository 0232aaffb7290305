"""The Python entry point, for notebooks and scripts: the config ``train.py`` would run, and the objects it builds.

    from src.api import build, compose

    cfg = compose(["experiment=gem_toy", "trainer.max_steps=20"])  # what `python train.py ...` would compose
    parts = build(cfg)  # parts.datamodule, parts.backbone, parts.module: ready for a Lightning Trainer

``register_objective(name, cls)`` adds ``module=<name>`` for an objective written outside ``src/`` (README,
"Extending"). ``compose`` registers the generated config nodes first (``model/``, ``module/``, ``data/``, ...: they
live in ``src/configs/store.py``, not in ``conf/``), so it needs no other call. To train as the command line does, call
``train.train(cfg)`` with the project folder on ``sys.path`` (``import train``; it is when a notebook runs there).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.configs import register_configs, register_objective
from src.utils.instantiate import instantiate

__all__ = ["Built", "build", "compose", "register_objective"]

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "conf"


class Built(NamedTuple):
    """What ``train.py`` builds before the trainer: the data, the backbone, and the objective that owns it."""

    datamodule: Any  # a LightningDataModule with its tokenizer built (.tokenizer)
    backbone: Any  # a factory: calling it builds the causal LM (the module calls it in configure_model)
    module: Any  # the objective's LightningModule


def compose(overrides: Sequence[str] = (), config_name: str = "train", output_dir: str | os.PathLike | None = None
            ) -> DictConfig:
    """The config of ``python <config_name>.py <overrides>`` (``train``, ``evaluate`` or ``distill``), resolved as
    in a real run: ``${hydra:...}`` interpolations work, and the run writes to ``output_dir`` (default
    ``logs/api/<time>`` under ``$PROJECT_ROOT``, the project folder). Bad keys or options raise Hydra's own errors,
    naming them."""
    register_configs()
    root = Path(os.environ.setdefault("PROJECT_ROOT", str(ROOT)))  # paths.root_dir, as train.py sets it
    output_dir = Path(output_dir or root / "logs" / "api" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f"))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=[*overrides, f"paths.output_dir={output_dir}"],
                            return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as in a real run
    with open_dict(cfg):
        del cfg["hydra"]  # a real run's cfg has no hydra node either
    return cfg


def build(cfg: DictConfig) -> Built:
    """The DataModule, the backbone factory and the module, as ``train.py`` instantiates them (the backbone is
    built by ``module.configure_model()``, which a Trainer calls, or call it yourself)."""
    datamodule = instantiate(cfg.data)
    backbone = instantiate(cfg.model, tokenizer=datamodule.tokenizer)
    return Built(datamodule, backbone, instantiate(cfg.module, model=backbone))
