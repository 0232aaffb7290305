"""The DataModule base every dataset shares: tokenizer, loading, encoding with drop accounting, and loaders.

Contract: ``hydra.utils.instantiate(cfg.data)`` is ready to use: it has built ``.tokenizer``. After
``setup("fit")``, ``train_dataloader()`` and ``val_dataloader()`` yield dict batches. A subclass says how to load a
split (``load_split``) and how to encode one row (``encode``: an example dict, or the reason to drop the row).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from src.datamodules.batching import EncodedDataset, EpochShuffleSampler, ResumableLoader, WindowedBatchSampler
from src.datamodules.encode import special_prefix
from src.datamodules.tokenizer import load_tokenizer
from src.utils.checks import require

log = logging.getLogger(__name__)


class PostTrainDataModule(LightningDataModule):
    def __init__(
        self,
        tokenizer: str = "toy",
        chat_template: str | None = None,
        max_length: int = 512,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        limit: int | None = None,
        val_limit: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        require(max_length >= 2, "data.max_length", max_length, "at least 2")
        require(batch_size >= 1, "data.batch_size", batch_size, "at least 1")
        require(limit is None or limit >= 1, "data.limit", limit, "at least 1 (or null for all rows)")
        require(val_limit is None or val_limit >= 1, "data.val_limit", val_limit, "at least 1 (or null)")
        self.tokenizer = load_tokenizer(tokenizer, chat_template)
        self.prefix_ids = special_prefix(self.tokenizer)
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.limit, self.val_limit = limit, val_limit
        self.num_workers = num_workers
        self.seed = seed
        self.datasets: dict[str, EncodedDataset] = {}
        self.drop_counts: dict[str, Counter] = {}

    # --- what a dataset defines -------------------------------------------------------------------------------
    def load_split(self, split: str) -> list[dict[str, Any]]:
        """Raw rows of ``split`` ("train" or "val"), with ``limit`` / ``val_limit`` applied."""
        raise NotImplementedError

    def encode(self, row: dict[str, Any]) -> dict[str, Any] | str:
        raise NotImplementedError

    def collate_fn(self) -> Callable:
        raise NotImplementedError

    def train_collate_fn(self) -> Callable:
        """The training loader's collator (a packed one where the training rows are packed)."""
        return self.collate_fn()

    # --- shared machinery ---------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            if split not in self.datasets:
                self.datasets[split] = EncodedDataset(self.encode_rows(self.load_split(split), split))

    def encode_rows(self, rows: Any, split: str) -> list[dict[str, Any]]:
        """Encode every row, dropping bad ones with a logged count per reason; fail if none is left."""
        kept, dropped = [], Counter()
        for row in rows:
            encoded = self.encode(row)
            if isinstance(encoded, str):
                dropped[encoded] += 1
            else:
                kept.append(encoded)
        self.drop_counts[split] = dropped
        if dropped:
            log.warning("%s: dropped %d of %d %s rows: %s", type(self).__name__, sum(dropped.values()),
                        len(kept) + sum(dropped.values()), split, dict(dropped))
        if not kept:
            source = f" of data.path={self.path}" if getattr(self, "path", None) else ""
            raise ValueError(
                f"{type(self).__name__}: no usable {split} rows left{source} after filtering (dropped: "
                f"{dict(dropped)}); check the file's rows and field names, and data.max_length={self.max_length}"
            )
        return kept

    def label_token_counts(self, split: str) -> list[int]:
        """Per example, the number of label tokens a shifted loss sees (the first label is never predicted)."""
        return [sum(label != -100 for label in ex["labels"][1:]) for ex in self.datasets[split].examples]

    def accumulation_window(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.accumulate_grad_batches if trainer is not None else 1

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        trainer = getattr(self, "trainer", None)
        # trainer.overfit_batches (debug=overfit) must see the same batches every epoch: Lightning turns off only its
        # own RandomSampler's shuffle, not this epoch-seeded one.
        fixed = trainer is not None and trainer.overfit_batches > 0
        order = range(len(dataset)) if fixed else EpochShuffleSampler(len(dataset), self.seed)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = WindowedBatchSampler(
            order, self.batch_size, drop_last=False, window=self.accumulation_window(),
            token_counts=self.label_token_counts("train"), rank=rank, world=world,
        )
        return ResumableLoader(dataset, batch_sampler=sampler, collate_fn=self.train_collate_fn(),
                               num_workers=self.num_workers, position=self.batches_done_this_epoch)

    def batches_done_this_epoch(self) -> int:
        """Micro-batches of the current epoch that Lightning counts as finished (what a resumed run skips)."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["val"], batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.collate_fn(), num_workers=self.num_workers)
