"""A run's backbone from its checkpoint: locate the checkpoint, rebuild the backbone from the run's config, load it.

Shared by evaluation (``model_path=<run dir>`` without an ``hf/`` export), SDFT's seed model and the conversion to a
Hugging Face directory (``python -m src.run.convert_checkpoint``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.utils.instantiate import instantiate

PREFIX = "model."  # the backbone's keys inside the LightningModule's state dict


def locate(path: str | Path) -> tuple[Path, Path]:
    """``(run dir, checkpoint)`` for a run directory or a checkpoint inside ``<run>/checkpoints/``."""
    path = Path(path).expanduser()
    run, ckpt = (path, path / "checkpoints" / "last.ckpt") if (path / ".hydra").is_dir() else (path.parent.parent, path)
    if not ckpt.exists():
        raise FileNotFoundError(f"{path}: no checkpoint at {ckpt}")
    if not (run / ".hydra" / "config.yaml").is_file():
        raise FileNotFoundError(f"{path}: {run} has no .hydra/config.yaml to rebuild the backbone from; pass a run "
                                "directory or a checkpoint inside <run>/checkpoints/")
    return run, ckpt


def load_backbone_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Load the backbone's weights (the ``model.*`` keys) from a ``.ckpt`` file or a sharded checkpoint directory."""
    if ckpt.is_dir():  # shards: read just the backbone's keys, reassembled to full tensors, in this one process
        import torch.distributed.checkpoint as dcp

        state = {"state_dict": {PREFIX + key: value for key, value in model.state_dict().items()}}
        with warnings.catch_warnings():  # "no process group: loading in one process" is exactly what is meant
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(state, checkpoint_id=ckpt)
        weights = state["state_dict"]
    else:
        weights = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({key[len(PREFIX):]: value for key, value in weights.items() if key.startswith(PREFIX)})


def backbone_from_config(cfg: DictConfig) -> tuple[Any, Any]:
    """``(model, tokenizer)`` as a ``train.py`` run with ``cfg`` starts: the DataModule's tokenizer (an interleaving
    DataModule's SFT stream's), and the backbone that ``cfg.model`` (a partial) builds with it."""
    from src.datamodules.tokenizer import load_tokenizer

    data = cfg.data.sft if "sft" in cfg.data else cfg.data
    tokenizer = load_tokenizer(data.get("tokenizer", "toy"), data.get("chat_template"))
    return instantiate(cfg.model)(tokenizer=tokenizer), tokenizer
