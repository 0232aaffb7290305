"""Two-process DDP (CPU, gloo) run of the interleaving scheduler; each rank writes what it trained on.

    python tests/integration/interleave_ddp_worker.py <out_dir> alright|maxright

Lightning's DDP launcher re-runs this script for rank 1. For ``alright`` rank 1's schedule gets a *different* seed,
so the ranks agree only because rank 0's choice is broadcast; for ``maxright`` each rank sees other data, so they
agree only because the losses are averaged over ranks. Used by tests/integration/test_interleave_ddp.py.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch import Callback  # noqa: E402

from src.callbacks.interleave_scheduler import InterleaveScheduler  # noqa: E402
from src.datamodules.interleave_streams import InterleaveDataModule  # noqa: E402
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule  # noqa: E402
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule  # noqa: E402
from src.interleave.schedules import Alright, MaxRight  # noqa: E402
from src.modules.backbones import tiny_llama  # noqa: E402
from src.modules.interleave import InterleaveModule  # noqa: E402

STEPS = 6


class Dump(Callback):
    def __init__(self, out: Path):
        self.out, self.choices, self.examples = out, [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.choices.append(sorted(pl_module.window_weights))

    def on_train_end(self, trainer, pl_module):
        dm = trainer.datamodule
        record = {"choices": self.choices, "consumed": {k: s.consumed for k, s in dm.streams.items()},
                  "first_sft_examples": [dm.streams["sft"].example(p) for p in range(dm.streams["sft"].per_pass)]}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main(out: Path, kind: str) -> None:
    torch.set_num_threads(1)
    dm = InterleaveDataModule(ToyWorldSFTDataModule(num_train=32, num_val=8, batch_size=4, seed=0),
                              ToyWorldPreferenceDataModule(num_train=16, num_val=8, batch_size=2, seed=0))
    rank = int(__import__("os").environ.get("LOCAL_RANK", 0))
    schedule = Alright(lam=0.5, seed=10 + rank) if kind == "alright" else MaxRight(lam=0.5, refresh_every=2)
    module = InterleaveModule(model=partial(tiny_llama, dm.tokenizer, hidden_size=32, num_layers=2, num_heads=2),
                              optimizer=partial(torch.optim.AdamW, lr=1e-3))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[InterleaveScheduler(schedule), Dump(out)])
    trainer.fit(module, datamodule=dm)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
