"""Two data streams for SFT/DPO interleaving, each advancing only when its objective trains.

Lightning's loop fetches (and prefetches one ahead) from its train loader every micro-batch, and a
``CombinedLoader`` of two loaders fetches both every time: the unused objective's batch would be consumed for
nothing (XRIGHT's ``sft_dpo_maxright_trainer.py`` does that every step). So the train loader Lightning sees yields
content-free placeholders, one per micro-batch, and the module pulls each real batch from the chosen objective's own
:class:`CyclingStream` (``next_batch``). Each stream cycles on its own (a fresh seeded shuffle of this rank's shard
per pass), so the datasets need not have equal lengths (XRIGHT requires them equal), and reports its coverage in
passes. The stream positions ride in the checkpoint. Validation has two loaders: SFT first, then preference pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from src.datamodules.batching import EncodedDataset, EpochShuffleSampler
from src.datamodules.datamodule import PostTrainDataModule
from src.utils.checks import require

Batch = dict[str, torch.Tensor]


class CyclingStream:
    """Endless training batches of one dataset for rank ``rank`` of ``world``.

    The stream is one endless sequence of examples: pass ``p`` is the ``EpochShuffleSampler`` order of
    ``(seed, p)``, sharded ``order[rank::world]`` (cut to ``len // world``, equal on every rank), followed by pass
    ``p + 1``. It is cut into accumulation windows of ``window`` micro-batches of ``batch_size``; a window may run
    across two passes, so no example is skipped and even a dataset smaller than one window works. Each micro-batch
    carries its window's label-token count (``num_items_in_batch``), so token means are exact over the window.
    Collation happens in the calling process: examples are tokenized up front and padding is cheap.
    """

    def __init__(self, dataset: EncodedDataset, batch_size: int, collate_fn: Any, token_counts: list[int],
                 seed: int = 0, rank: int = 0, world: int = 1, window: int = 1):
        self.dataset, self.batch_size, self.collate_fn = dataset, batch_size, collate_fn
        self.token_counts, self.seed, self.rank, self.world, self.window = token_counts, seed, rank, world, window
        self.per_pass = len(dataset) // world
        require(self.per_pass >= 1, "trainer.devices", world, f"at most the {len(dataset)} examples of a stream")
        self.consumed = 0  # examples of this rank's endless sequence handed out so far
        self._queue: list[list[tuple[int, int]]] = []  # the rest of the current window's micro-batches
        self._order: tuple[int, list[int]] = (-1, [])  # (pass, its shard order), the last one built

    def example(self, position: int) -> int:
        """The dataset index at ``position`` of this rank's endless sequence."""
        epoch, offset = divmod(position, self.per_pass)
        if self._order[0] != epoch:
            sampler = EpochShuffleSampler(len(self.dataset), self.seed)
            sampler.set_epoch(epoch)
            self._order = (epoch, list(sampler)[self.rank::self.world][: self.per_pass])
        return self._order[1][offset]

    def _fill_window(self) -> None:
        size = self.batch_size * self.window
        start = self.consumed + sum(len(b) for b in self._queue)
        indices = [self.example(p) for p in range(start, start + size)]
        total = sum(self.token_counts[i] for i in indices) if self.token_counts else 0
        self._queue = [[(i, total) for i in indices[j:j + self.batch_size]] for j in range(0, size, self.batch_size)]

    def next(self) -> Batch:
        if not self._queue:
            self._fill_window()
        micro = self._queue.pop(0)
        self.consumed += len(micro)
        return self.collate_fn([self.dataset[key] for key in micro])

    @property
    def epochs_seen(self) -> float:
        return self.consumed / self.per_pass

    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.consumed, self._queue = state["consumed"], []


class Placeholders(IterableDataset):
    """``length`` content-free micro-batches (their index); a plain iterable, so no sampler is injected under DDP."""

    def __init__(self, length: int):
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (torch.tensor(i) for i in range(self.length))


class PlaceholderLoader(DataLoader):
    """Resumable as far as Lightning is concerned: a placeholder carries no data, so any position is the right one
    (the real positions are the streams', saved by the DataModule)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class InterleaveDataModule(LightningDataModule):
    """An SFT DataModule (``sft``) and a preference DataModule (``prefs``), built from their own config nodes.

    ``probe_batches``: how many held-out (validation) batches per objective MAXRIGHT's refresh evaluates; the same
    batches every time and on every rank, so refreshed values are comparable over steps. ``num_workers``, when
    set, replaces both sources' (it applies to their validation loaders; the streams collate in-process).
    """

    STREAMS = ("sft", "dpo")

    def __init__(self, sft: PostTrainDataModule, prefs: PostTrainDataModule, probe_batches: int = 1,
                 num_workers: int | None = None):
        super().__init__()
        require(probe_batches >= 1, "data.probe_batches", probe_batches, ">= 1")
        require(num_workers is None or num_workers >= 0, "data.num_workers", num_workers, ">= 0")
        for source in (sft, prefs):
            source.num_workers = source.num_workers if num_workers is None else num_workers
        same = len(sft.tokenizer) == len(prefs.tokenizer) and sft.tokenizer.pad_token_id == prefs.tokenizer.pad_token_id
        require(same, "data.prefs.tokenizer", getattr(prefs.tokenizer, "name_or_path", prefs.tokenizer),
                "the SFT stream's tokenizer (one model trains on both streams)")
        self.sources = {"sft": sft, "dpo": prefs}
        self.tokenizer = sft.tokenizer
        self.probe_batches_per_objective = probe_batches
        self.streams: dict[str, CyclingStream] = {}
        self._probes: dict[str, list[Batch]] | None = None
        self._pending: dict[str, Any] | None = None  # stream state restored before the streams exist

    def setup(self, stage: str | None = None) -> None:
        for source in self.sources.values():
            source.setup(stage)

    def build_streams(self, rank: int = 0, world: int = 1, window: int = 1) -> None:
        """(Re)build both streams for this rank; positions carry over (a checkpoint's, or an earlier fit's)."""
        carried = self._pending or (self.state_dict() if self.streams else None)
        self.streams = {
            name: CyclingStream(dm.datasets["train"], dm.batch_size, dm.train_collate_fn(),
                                dm.label_token_counts("train"), dm.seed, rank, world, window)
            for name, dm in self.sources.items()
        }
        if carried:
            self.load_state_dict(carried)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        require(trainer.max_steps > 0, "trainer.max_steps", trainer.max_steps,
                "> 0: interleaved training is measured in optimizer steps")
        self.build_streams(trainer.global_rank, trainer.world_size, trainer.accumulate_grad_batches)
        return PlaceholderLoader(Placeholders(trainer.max_steps * trainer.accumulate_grad_batches), batch_size=None)

    def val_dataloader(self) -> list[DataLoader]:
        return [self.sources[name].val_dataloader() for name in self.STREAMS]

    def next_batch(self, objective: str) -> Batch:
        """The next training batch of ``objective``'s stream (on CPU); only that stream advances."""
        return self.streams[objective].next()

    def probe_batches(self) -> dict[str, list[Batch]]:
        if self._probes is None:
            # Loading them draws a loader seed from the global RNG; forked, so a resumed run, which loads them at its
            # first refresh rather than at step 0, draws the same dropout masks as the uninterrupted run.
            with torch.random.fork_rng(devices=[]):
                self._probes = {name: list(islice(self.sources[name].val_dataloader(),
                                                  self.probe_batches_per_objective)) for name in self.STREAMS}
        return self._probes

    def coverage(self) -> dict[str, float]:
        """Passes over each stream's training data so far (this rank's shard)."""
        return {name: stream.epochs_seen for name, stream in self.streams.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: stream.state_dict() for name, stream in self.streams.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.streams:
            self._pending = state
            return
        for name, stream_state in state.items():
            self.streams[name].load_state_dict(stream_state)
        self._pending = None
