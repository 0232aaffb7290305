"""SDFT's first stage on its own: ``python distill.py distill=<task> distill.path=<train file> model_path=<seed>``.

The seed model rewrites every training response from a distillation template (it sees the gold response), the
filters keep a rewrite or the original, and the distilled file (the input's schema and row order) is cached under
``cache/distill/<key>/``; its path, ``provenance.jsonl`` and ``summary.json`` are logged. ``torchrun
--nproc_per_node=N distill.py ...`` splits the shards over N processes. ``train.py experiment=sdft_*`` runs the same
stage itself, so this script is for distilling once and training many times, or on another machine.

``generations=<jsonl>`` (instead of ``model_path=``) filters and merges responses generated elsewhere (vLLM, a
cluster job) and loads no model: the distilled file goes to ``output=``, else into the run directory.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from src.configs import register_configs
from src.eval.engine.models import load_model
from src.run.cli import run_with_key_help
from src.sdft.saved import distill_saved
from src.sdft.stage import dataset_suffix
from src.utils.instantiate import instantiate

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "conf"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
register_configs()
log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Path:
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg.cpu_threads)
    _check_source(cfg)
    if cfg.generations:
        return from_generations(cfg)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    stage = instantiate(cfg.distill)  # types and templates fail here, before the model loads
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cfg.device == "auto" and torch.cuda.is_available() \
        else ("cpu" if cfg.device == "auto" else cfg.device)
    model, tokenizer = load_model(cfg.model_path, cfg.dtype, device, cfg.base_model_path)
    target = stage(model=model, tokenizer=tokenizer, rank=rank, world_size=world)
    if rank == 0:
        _report(target, Path(cfg.paths.output_dir))
    return target


def from_generations(cfg: DictConfig) -> Path:
    """The stage on saved generations: no model, no tokenizer, no cache (filtering a file takes seconds)."""
    stage = instantiate(cfg.distill)  # a partial of the stage: its settings, filters instantiated
    output = cfg.output or Path(cfg.paths.output_dir) / f"distilled{dataset_suffix(cfg.distill.path)}"
    target = distill_saved(cfg.generations, str(output), **stage.keywords)
    _report(target, Path(cfg.paths.output_dir))
    return target


def _check_source(cfg: DictConfig) -> None:
    if not cfg.model_path and not cfg.generations:
        raise ValueError("distill.py needs model_path= (a seed model generates the rewrites) or generations= "
                         "(a JSON lines file of rewrites generated elsewhere)")
    if cfg.model_path and cfg.generations:
        raise ValueError("give model_path= (generate the rewrites) or generations= (use saved ones), not both")
    if cfg.output and not cfg.generations:
        raise ValueError("output= is where generations= mode writes; with model_path= the distilled file is cached "
                         "under distill.cache_dir and its path is logged")


def _report(target: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(target.with_name(target.stem + ".summary.json"), out / "summary.json")
    log.info("distilled dataset: %s (train on it with data.path=%s)", target, target)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="distill")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    run_with_key_help(main, CONFIG_DIR, "distill")
