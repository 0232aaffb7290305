"""A Hugging Face directory from a training checkpoint: ``python -m src.utils.convert_checkpoint <run | ckpt> <out>``.

``<run>`` is a ``train.py`` run directory (its ``checkpoints/last.ckpt``); ``<ckpt>`` is any checkpoint of a run,
``<run>/checkpoints/<name>``. Either format works: a single ``.ckpt`` file (one process, DDP, or ``trainer=fsdp2``
with ``trainer.strategy.save_distributed_checkpoint=false``) or a directory of shards (``trainer=fsdp2``'s default,
torch distributed checkpoint), read in one process without the ranks that wrote it. The backbone is rebuilt from the
run's own ``.hydra/config.yaml`` (tokenizer, architecture, LoRA wrapper), its weights are loaded, and it is written
like the run's own export (``HFExport``: LoRA merged unless ``--no-merge-lora``, with the tokenizer).
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)
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


def convert(path: str | Path, out_dir: str | Path, merge_lora: bool = True) -> Path:
    """Write the Hugging Face directory of ``path``'s checkpoint to ``out_dir``; returns ``out_dir``."""
    from omegaconf import OmegaConf

    from src.callbacks.export import export_hf
    from src.configs import register_configs
    from src.utils.instantiate import backbone_from_config

    run, ckpt = locate(path)
    register_configs()  # the run's config uses the project's resolvers
    model, tokenizer = backbone_from_config(OmegaConf.load(run / ".hydra" / "config.yaml"))
    load_backbone_weights(model, ckpt)
    out = export_hf(model, tokenizer, out_dir, merge_lora)
    log.info("converted %s to the Hugging Face directory %s", ckpt, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a train.py run directory, or a checkpoint (file or shard directory) in one")
    parser.add_argument("out_dir", help="the Hugging Face directory to write")
    parser.add_argument("--no-merge-lora", action="store_true", help="write a LoRA adapter alone, unmerged")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(convert(args.path, args.out_dir, merge_lora=not args.no_merge_lora))


if __name__ == "__main__":
    main()
