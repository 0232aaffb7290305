"""Distance to the ideal point (L_sft*, L_dpo*) with paired bootstrap intervals, from per-example validation values.

XRIGHT (arXiv 2410.15483) scores a joint SFT + DPO run by the Euclidean distance of its held-out losses from the
ideal point, the losses that an SFT-only and a DPO-only run reach. A difference in distance between two methods
needs an interval: here every quantity is rebuilt from the per-example lines that ``callback=validation_examples``
writes (``data.sft.eval_batch_size=1`` and ``data.prefs.eval_batch_size=1``), at each run's last validation:

- a run's SFT loss is token-weighted over the held-out SFT examples (the logged ``val/sft_loss``), its DPO loss the
  mean over held-out pairs (``val/dpo_loss``);
- one resample draws the SFT examples and the pairs with replacement, the same draw for every run (paired), and
  computes every run's losses, the ideal point (the SFT-only runs' SFT loss, the DPO-only runs' DPO loss: their last
  validation, XRIGHT's choice, ``src.interleave.optima --take last``; the mean over the runs when each training seed
  has its own) and each method's distance on it;
- a method with several runs (schedule seeds) also draws its runs with replacement and averages their distances.

:func:`versus` gives each method's distance minus the baseline method's, with a 95% percentile interval.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from src.eval.metrics.bootstrap import percentile_interval


class Examples(NamedTuple):
    """One validation's per-example values of a run."""

    sft: np.ndarray  # (N,) mean SFT loss of each held-out example
    tokens: np.ndarray  # (N,) its label tokens: the example's weight in the token-weighted loss
    dpo: np.ndarray  # (M,) DPO loss of each held-out pair

    def losses(self) -> tuple[float, float]:
        """The logged ``(val/sft_loss, val/dpo_loss)`` of this validation."""
        return float((self.sft * self.tokens).sum() / self.tokens.sum()), float(self.dpo.mean())


def read_lines(path: Path) -> list[dict]:
    """A ``val_examples.jsonl`` (or its gzipped archive, ``.jsonl.gz``) as a list of lines."""
    path = Path(path)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def validation(lines: list[dict], step: int | None = None) -> Examples:
    """The values of the validation after ``step`` optimizer steps (default: the last one), in batch order."""
    step = max(line["step"] for line in lines) if step is None else step
    at = sorted((line for line in lines if line["step"] == step), key=lambda line: line["batch"])
    sft = [line for line in at if line.get("objective") == "sft"]
    dpo = [line for line in at if line.get("objective") == "dpo"]
    if not sft or not dpo:
        raise ValueError(f"no per-example SFT and DPO lines at step {step}: were the runs validated on both streams "
                         "with callback=validation_examples?")
    if any(line["weight"] <= 0 for line in sft) or len({line["batch"] for line in sft}) != len(sft):
        raise ValueError("SFT lines must be one example per batch (data.sft.eval_batch_size=1), each with tokens")
    return Examples(np.array([line["val/sft_loss"] for line in sft]), np.array([line["weight"] for line in sft], float),
                    np.array([line["val/dpo_loss"] for line in dpo]))


def _distances(values: dict[str, Examples], groups: dict[str, list[str]], sft_only: list[str], dpo_only: list[str],
               sft_idx: np.ndarray, dpo_idx: np.ndarray, picks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{group: (B,)}``: each group's distance on each resample (rows of ``sft_idx`` ``(B, N)``, ``dpo_idx``
    ``(B, M)``; ``picks[group]`` ``(S, B)`` the drawn runs of the group)."""
    def losses(run: str) -> tuple[np.ndarray, np.ndarray]:
        v = values[run]
        tokens = v.tokens[sft_idx]
        return (v.sft[sft_idx] * tokens).sum(1) / tokens.sum(1), v.dpo[dpo_idx].mean(1)

    opt_sft = np.mean([losses(run)[0] for run in sft_only], axis=0)  # (B,)
    opt_dpo = np.mean([losses(run)[1] for run in dpo_only], axis=0)
    out = {}
    for group, runs in groups.items():
        per_run = np.stack([np.hypot(s - opt_sft, d - opt_dpo) for s, d in map(losses, runs)])  # (S, B)
        out[group] = per_run[picks[group], np.arange(per_run.shape[1])[None, :]].mean(0)
    return out


def versus(values: dict[str, Examples], groups: dict[str, list[str]], baseline: str, sft_only: list[str],
           dpo_only: list[str], resamples: int = 10_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{group: {"distance", "minus_<baseline>", "low", "high"}}``: each group's distance to the ideal point (its runs'
    mean) and its difference from ``baseline``'s with a 95% paired bootstrap interval (see the module docstring).
    ``values``: run name -> its :func:`validation`; every run must hold the same held-out examples. ``sft_only`` and
    ``dpo_only``: the single-objective runs whose mean losses are the ideal point."""
    n_sft, n_dpo = len(values[sft_only[0]].sft), len(values[sft_only[0]].dpo)
    shapes = {name: (len(v.sft), len(v.dpo)) for name, v in values.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"the runs were validated on different held-out sets (SFT examples, pairs): {shapes}")
    rng = np.random.default_rng(seed)
    sft_idx, dpo_idx = rng.integers(0, n_sft, (resamples, n_sft)), rng.integers(0, n_dpo, (resamples, n_dpo))
    picks = {g: rng.integers(0, len(runs), (len(runs), resamples)) for g, runs in groups.items()}
    drawn = _distances(values, groups, sft_only, dpo_only, sft_idx, dpo_idx, picks)
    everything = {g: np.arange(len(runs))[:, None] for g, runs in groups.items()}
    point = _distances(values, groups, sft_only, dpo_only, np.arange(n_sft)[None, :], np.arange(n_dpo)[None, :],
                       everything)
    out = {}
    for group in groups:
        low, high = percentile_interval(drawn[group] - drawn[baseline])
        out[group] = {"distance": float(point[group][0]),
                      f"minus_{baseline}": float(point[group][0] - point[baseline][0]), "low": low, "high": high}
    return out
