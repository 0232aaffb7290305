"""A Hugging Face directory from a training checkpoint: ``python -m src.run.convert_checkpoint <run | ckpt> <out>``.

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
from pathlib import Path

from src.modules.checkpoints import backbone_from_config, load_backbone_weights, locate

log = logging.getLogger(__name__)


def convert(path: str | Path, out_dir: str | Path, merge_lora: bool = True) -> Path:
    """Write the Hugging Face directory of ``path``'s checkpoint to ``out_dir``; returns ``out_dir``."""
    from omegaconf import OmegaConf

    from src.callbacks.export import export_hf
    from src.configs import register_configs

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
