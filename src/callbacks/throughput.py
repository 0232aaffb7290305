"""Training throughput and cost: tokens and samples per second, step time, peak memory and (on GPU) MFU."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from src.utils.flops import flops_per_token, mfu, peak_flops


class TokensPerSecond(Callback):
    """Logs, with ``on_step`` (so Lightning writes them every ``trainer.log_every_n_steps``):

    - ``train/tokens_per_sec``, ``train/tokens_seen``: non-pad input tokens, summed over all ranks;
    - ``train/samples_per_sec``: sequences (rows of a batch; a preference pair is two; the documents of packed
      rows), summed over all ranks;
    - ``train/step_time_sec``: wall seconds per optimizer step (the whole accumulation window);
    - ``train/peak_memory_gib``: this process's peak (rank 0's in the logs): CUDA's ``max_memory_allocated`` on a GPU,
      the peak resident set size on a CPU;
    - ``train/mfu`` on a GPU only: model FLOPs per second (:func:`src.utils.flops.flops_per_token` x non-pad tokens,
      all ranks) over the peak of all GPUs, ``peak_flops`` per GPU or the device's dense bf16 peak
      (:data:`src.utils.flops.PEAK_FLOPS`); nothing when the GPU is not known and ``peak_flops`` is null.

    Rates are measured between consecutive batch ends, data loading included. On a GPU the host runs ahead of the
    device by a few kernels, so a single step's rate is approximate; averaged over steps it is not.
    """

    def __init__(self, peak_flops: float | None = None) -> None:
        self.peak_flops = peak_flops
        self.device_peak: float | None = None  # of this run's device, known at fit start
        self.last: float | None = None
        self.last_step: tuple[int, float] | None = None  # (global_step, time) at the end of the last optimizer step
        self.seen = 0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.device_peak = self._peak(pl_module)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.last is None:
            self.last = time.perf_counter()
            self.last_step = (trainer.global_step, self.last)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        masks = [v for k, v in batch.items() if k.endswith("attention_mask")]  # each (B, T)
        samples = float(batch["num_documents"].sum()) if "num_documents" in batch else sum(m.shape[0] for m in masks)
        local = torch.tensor([sum(float(m.sum()) for m in masks), samples,
                              self._flops(pl_module, masks)], dtype=torch.float64, device=pl_module.device)
        tokens, samples, flops = trainer.strategy.reduce(local, reduce_op="sum").tolist()  # one collective
        now = time.perf_counter()
        seconds = max(now - self.last, 1e-9)
        self.seen += int(tokens)
        log = lambda name, value: pl_module.log(name, float(value), on_step=True, on_epoch=False)
        log("train/tokens_per_sec", tokens / seconds)
        log("train/tokens_seen", self.seen)
        log("train/samples_per_sec", samples / seconds)
        log("train/peak_memory_gib", peak_memory_bytes(pl_module.device) / 2**30)
        if flops:
            log("train/mfu", mfu(flops / seconds, self.device_peak, trainer.world_size))
        step, started = self.last_step
        if trainer.global_step != step:  # this batch ended an optimizer step
            log("train/step_time_sec", (now - started) / (trainer.global_step - step))
            self.last_step = (trainer.global_step, now)
        self.last = now

    def _peak(self, pl_module: LightningModule) -> float | None:
        if pl_module.device.type != "cuda":
            return None
        return self.peak_flops or peak_flops(torch.cuda.get_device_name(pl_module.device))

    def _flops(self, pl_module: LightningModule, masks: list[torch.Tensor]) -> float:
        """This rank's model FLOPs for the batch, or 0 where MFU is not logged (a CPU, an unknown GPU)."""
        if not masks or self.device_peak is None:
            return 0.0
        model = pl_module.model
        return sum(float(m.sum()) * flops_per_token(model, m.shape[-1]) for m in masks)

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seen = state_dict["seen"]


def peak_memory_bytes(device: torch.device) -> int:
    """The process's peak memory on ``device``: CUDA's allocator peak, else the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux, bytes on macOS
