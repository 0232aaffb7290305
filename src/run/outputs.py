"""Run bookkeeping: where a run writes, its config at the start; its outputs, before/after and model card at the end."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from src.callbacks.export import HFExport
from src.eval.reports.curves import plot_curves
from src.loggers.csv import checkpoint_step
from src.run.model_card import write_model_card
from src.utils.command import command_line

log = logging.getLogger(__name__)


def announce_run(cfg: DictConfig) -> None:
    """Say first where the run writes, so its log, checkpoints and metrics can be found while it runs."""
    log.info("run directory: %s", Path(cfg.paths.output_dir).resolve())
    if cfg.get("ckpt_path"):
        log.info("resuming from %s", cfg.ckpt_path)


def log_config(cfg: DictConfig, trainer: Trainer) -> None:
    """Send the resolved config to every logger, so runs are comparable on the dashboard."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(resolved)


def metrics_csv(trainer: Trainer) -> Path | None:
    """The ``metrics.csv`` of the first CSV logger, if it wrote one."""
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger) and (path := Path(logger.log_dir) / "metrics.csv").is_file():
            return path
    return None


def read_validation_history(path: Path) -> dict[int, dict[str, float]]:
    """``{step: {val/metric: value}}`` from a ``metrics.csv``; rows logged at one step are merged."""
    history: dict[int, dict[str, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k.startswith("val/") and v}
            if values:
                history.setdefault(int(row["step"]), {}).update(values)
    return history


def validation_history(trainer: Trainer) -> dict[int, dict[str, float]]:
    """Every validation of the run, a resumed one's included, from the CSV history; without a CSV logger only
    the last, from memory."""
    if path := metrics_csv(trainer):
        return read_validation_history(path)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return {trainer.global_step: final} if final else {}


def comparison_table(history: dict[int, dict[str, float]]) -> str:
    """The first validation (before training, when ``validate_before_fit``) next to the final one."""
    if not history:
        return "no validation metrics"
    first, final = min(history), max(history)
    if first == final:  # one validation (e.g. no CSV history): nothing to compare it with
        columns = {f"step {final}": history[final]}
    else:
        columns = {f"first (step {first})": history[first], f"final (step {final})": history[final]}
    names = sorted(set().union(*columns.values()))
    width = max(map(len, names)) + 2
    lines = [f"{'validation':<{width}}" + "".join(f"{head:>20}" for head in columns)]
    for name in names:
        cells = (f"{values[name]:.4f}" if name in values else "-" for values in columns.values())
        lines.append(f"{name:<{width}}" + "".join(f"{cell:>20}" for cell in cells))
    return "\n".join(lines)


def outputs_summary(trainer: Trainer, hf_dir: Path | None, curves: Path | None = None) -> str:
    """Where the run's checkpoints, metrics history, curves and Hugging Face export are."""
    ckpt = trainer.checkpoint_callback  # the first: model_checkpoint, the best by a metric
    best = getattr(ckpt, "best_model_path", "") or "none"
    if best != "none" and getattr(ckpt, "best_model_score", None) is not None:
        best += f" ({ckpt.monitor}={float(ckpt.best_model_score):.4f})"
    # last.ckpt: a save_last file, or the newest file of a checkpoint callback without a metric (last_checkpoint)
    last = [cb.last_model_path or (cb.best_model_path if cb.monitor is None else "")
            for cb in trainer.checkpoint_callbacks]
    lines = [
        f"checkpoint (last): {next((path for path in last if path), 'none')}",
        f"checkpoint (best): {best}",
        f"metrics.csv:       {metrics_csv(trainer) or 'none'}",
        f"curves:            {curves or 'none'}",
        f"hf export:         {hf_dir or 'none'}" + (" (with README.md model card)" if hf_dir else ""),
    ]
    return "\n".join(lines)


def write_curves(cfg: DictConfig, trainer: Trainer) -> Path | None:
    """``<run dir>/curves.png`` from the run's whole ``metrics.csv``; none without a CSV history or without train/val
    values in it (``debug=fdr``, a run stopped before its first logged step)."""
    history, out = metrics_csv(trainer), Path(cfg.paths.output_dir) / "curves.png"
    if history is None or not out.parent.is_dir():
        return None
    return out if plot_curves(history, out, cfg.get("run_name") or out.parent.name) is not None else None


def exported_dir(trainer: Trainer) -> Path | None:
    """The directory the ``HFExport`` callback wrote in this run, if it did."""
    return next((cb.exported for cb in trainer.callbacks if isinstance(cb, HFExport) and cb.exported), None)


def finish_run(cfg: DictConfig, trainer: Trainer) -> dict[str, float]:
    """After the final validation: ``metrics.json``, the export's model card, where everything is, and
    before/after. Returns the final metrics as plain floats."""
    if resumed_at_its_end(cfg, trainer):
        return finish_complete_run(cfg, trainer)
    # step and epoch are row numbers (StepNumbers), not metrics
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k not in ("step", "epoch")}
    out = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        if out.exists():
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        history = validation_history(trainer)
        curves = write_curves(cfg, trainer)
        hf_dir = exported_dir(trainer)
        if hf_dir:
            final = history[max(history)] if history else {}
            resolved = OmegaConf.to_container(cfg, resolve=True)
            if curves:  # a copy: the card is read alone (on the Hub), where ../curves.png does not exist
                shutil.copyfile(curves, hf_dir / curves.name)
            write_model_card(hf_dir, resolved, final, command_line(), trainer.global_step,
                             curves=curves.name if curves else None)
        log.info("outputs:\n%s", outputs_summary(trainer, hf_dir, curves))
        log.info("validation, before and after training:\n%s", comparison_table(history))
    log.info("final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
    return metrics


def resumed_at_its_end(cfg: DictConfig, trainer: Trainer) -> bool:
    """A run resumed from a checkpoint that was already at its end (``ckpt_path=auto`` on a finished run): ``fit``
    restored it and stopped at once, with no step and no validation."""
    ckpt = cfg.get("ckpt_path")
    validated = any(k.startswith("val/") for k in trainer.callback_metrics)
    return bool(ckpt) and not validated and trainer.global_step == checkpoint_step(ckpt)


def finish_complete_run(cfg: DictConfig, trainer: Trainer) -> dict[str, float]:
    """Nothing was trained: keep the run's ``metrics.json`` and return it. If it is missing (killed after the last
    checkpoint) or empty (written by a version that had this bug), rewrite it from the last validation in the CSV
    history."""
    path = Path(cfg.paths.output_dir) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    log.info("the run was already complete at step %d (%s): nothing to train", trainer.global_step, cfg.ckpt_path)
    if not metrics:
        history = validation_history(trainer)
        metrics = history[max(history)] if history else {}
        if trainer.is_global_zero and metrics:
            path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
            log.info("metrics.json rewritten from the last validation in the history (step %d)", max(history))
    log.info("final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
    return metrics
