"""Applies an SFT/DPO interleaving schedule once per optimizer step, logs its choices and their cost.

At the first micro-batch of each accumulation window the callback asks the schedule for the step's loss weights
(after a held-out probe of both objectives if the schedule wants one, MAXRIGHT's refresh), broadcasts them from
rank 0 and hands them to the module (``request``); at the window's end it reports the rank-averaged training losses
back (``observe``) and logs, per step:

- ``schedule/is_sft``, ``schedule/is_dpo`` (both 1 for Mix), cumulative ``schedule/{sft,dpo}_steps``, and the
  schedule's own diagnostics (MAXRIGHT: ``schedule/{sft,dpo}_gap`` and ``..._gap_age``);
- ``cost/step_seconds`` (the window's wall time: probe, forward, backward and optimizer step), cumulative
  ``cost/train_seconds`` and ``cost/{sft,dpo,mix}_seconds`` by the kind of step, ``cost/{kind}_peak_mb`` (the
  largest per-step peak memory of that kind so far, see ``src.interleave.cost``) and ``cost/probe_seconds``.

The schedule's state (RNG, stale values), the counters and the cost totals are saved in checkpoints, so a resumed
run continues the same schedule.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.interleave.cost import peak_mb, reset_peak, synchronize
from src.interleave.schedules import OBJECTIVES, Schedule, Weights


def kind_of(weights: Weights) -> str:
    return next(iter(weights)) if len(weights) == 1 else "mix"


class InterleaveScheduler(Callback):
    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.steps = {obj: 0 for obj in OBJECTIVES}  # optimizer steps that computed each objective
        self.seconds: dict[str, float] = {"train": 0.0, "probe": 0.0}
        self.peaks: dict[str, float] = {}  # kind of step -> its largest peak memory so far (MiB)
        self._start = 0.0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not hasattr(pl_module, "request"):
            raise TypeError(f"InterleaveScheduler drives an InterleaveModule (module=interleave), got "
                            f"{type(pl_module).__name__}")

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches:
            return  # never switch inside an accumulation window
        synchronize(pl_module.device)
        reset_peak(pl_module.device)
        self._start = time.perf_counter()
        step = trainer.global_step
        if self.schedule.wants_probe(step):
            losses = pl_module.probe_losses(trainer.datamodule.probe_batches())
            self.schedule.refresh(rank_mean(trainer, losses))
            self.seconds["probe"] += time.perf_counter() - self._start
        # Every rank computes the choice (keeping schedule states in lockstep); rank 0's copy is the one used.
        weights = trainer.strategy.broadcast(self.schedule.choose(step, trainer.max_steps), src=0)
        pl_module.request(weights)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # the window (and its optimizer step) is not done yet
        weights = pl_module.window_weights
        losses = {obj: torch.stack(values).mean() for obj, values in pl_module.window_losses.items()}
        self.schedule.observe(weights, rank_mean(trainer, losses))
        synchronize(pl_module.device)
        seconds, kind = time.perf_counter() - self._start, kind_of(weights)
        for obj in weights:
            self.steps[obj] += 1
        self.seconds["train"] += seconds
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.peaks[kind] = max(self.peaks.get(kind, 0.0), peak_mb(pl_module.device))
        metrics = {f"schedule/is_{obj}": float(obj in weights) for obj in OBJECTIVES}
        metrics |= {f"schedule/{obj}_steps": float(n) for obj, n in self.steps.items()}
        metrics |= {f"schedule/{k}": v for k, v in self.schedule.metrics().items()}
        metrics |= {f"cost/{k}_seconds": v for k, v in self.seconds.items()}
        metrics |= {f"cost/{k}_peak_mb": v for k, v in self.peaks.items()} | {"cost/step_seconds": seconds}
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": type(self.schedule).__name__, "schedule": self.schedule.state_dict(),
                "steps": dict(self.steps), "seconds": dict(self.seconds), "peaks": dict(self.peaks)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["kind"] != type(self.schedule).__name__:
            raise ValueError(f"this checkpoint was trained with a {state_dict['kind']} schedule, not "
                             f"{type(self.schedule).__name__}: resume with the same interleave config")
        self.schedule.load_state_dict(state_dict["schedule"])
        self.steps, self.seconds = dict(state_dict["steps"]), dict(state_dict["seconds"])
        self.peaks = dict(state_dict.get("peaks", {}))


def rank_mean(trainer: Trainer, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each loss averaged over ranks (XRIGHT all-reduces MAXRIGHT's values), as plain floats, in a fixed order."""
    names = [obj for obj in OBJECTIVES if obj in losses]
    if not names:
        return {}
    stacked = torch.stack([losses[obj].detach().float() for obj in names])  # (objectives,)
    reduced = trainer.strategy.reduce(stacked, reduce_op="mean")
    return dict(zip(names, reduced.tolist()))
