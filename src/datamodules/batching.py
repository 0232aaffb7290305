"""Accumulation-window token counts, so a token-mean loss is normalised over the whole optimizer step.

Hugging Face's trainers pass ``num_items_in_batch`` (the label-token count of every micro-batch that feeds one
optimizer step) to the loss; the GEM v2 trainer relies on it. Lightning does not prefetch, but our datasets are
tokenized up front, so the batch sampler can count the window's tokens before the first micro-batch is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that is a pure function of ``(seed, epoch)``: a run resumed at an epoch boundary sees exactly the
    order the uninterrupted run would have seen. Lightning calls ``set_epoch`` before each epoch."""

    def __init__(self, num_examples: int, seed: int = 0):
        self.num_examples, self.seed, self.epoch = num_examples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_examples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_examples, generator=generator).tolist())


class WindowedBatchSampler(BatchSampler):
    """Yields micro-batches of ``(index, window_tokens)``; each window is ``window`` consecutive micro-batches.

    Windows start at the first batch of the epoch, as Lightning's accumulation windows do. With ``world`` ranks the
    sampler cuts *global* batches of ``batch_size * world`` from the one order every rank shares and yields rank
    ``rank``'s share (every ``world``-th example), so W processes at batch b train on exactly the batches that one
    process trains on at batch W b. ``window_tokens`` counts this rank's share; the module sums it over ranks. A last
    global batch smaller than ``world`` is dropped, so every rank has the same number of batches.
    """

    def __init__(
        self, sampler: Sampler | Sequence[int], batch_size: int, drop_last: bool, window: int = 1,
        token_counts: Sequence[int] = (), rank: int = 0, world: int = 1,
    ):
        super().__init__(sampler, batch_size * world, drop_last)
        self.window, self.token_counts, self.rank, self.world = window, token_counts, rank, world
        self.skip = 0  # micro-batches to pass over at the start of the next epoch (a resumed one), once

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full + (0 if self.drop_last or rest < self.world else 1)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        skip, self.skip = self.skip, 0
        shares = (g[self.rank::self.world] for g in super().__iter__() if len(g) >= self.world)  # (b,) each
        position = 0
        while group := list(islice(shares, self.window)):
            total = sum(self.token_counts[i] for batch in group for i in batch)  # windows align at batch 0
            for batch in group:
                position += 1
                if position > skip:
                    yield [(i, total) for i in batch]


class ResumableLoader(DataLoader):
    """A training loader that a run resumed mid-epoch continues where that epoch stopped.

    Lightning restores its own count of the epoch's finished batches but restarts a plain loader at batch 0 (so
    the first batches would train twice and the last never). Here the checkpoint stores that count (``position``,
    read when the checkpoint is written), and the restored loader's sampler passes over as many micro-batches: the
    order is a pure function of (seed, epoch), so this is index arithmetic and loads no data. A count that fills
    the epoch means the next epoch starts from its beginning.
    """

    def __init__(self, *args: Any, position: Callable[[], int], **kwargs: Any):
        # Each epoch's iterator draws a (worker) seed; from its own generator, so that a new epoch leaves the global
        # random state (dropout's) as it was, as a resumed run's restored state assumes (src/callbacks/rng_state.py).
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(*args, **kwargs)
        self.position = position

    def state_dict(self) -> dict[str, int]:
        return {"position": int(self.position())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        position = state.get("position", 0)
        self.batch_sampler.skip = position if position < len(self.batch_sampler) else 0


class EncodedDataset(Dataset):
    """A list of encoded examples; indexing with ``(i, window_tokens)`` attaches ``num_items_in_batch``."""

    def __init__(self, examples: list[dict[str, Any]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, window_tokens = key
            return {**self.examples[index], "num_items_in_batch": window_tokens}
        return self.examples[key]
