"""The toy-world accuracy callback refuses other data at setup, before any step runs."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from src.callbacks.task_accuracy import TaskAccuracy
from src.datamodules.sft import AlpacaDataModule
from src.datamodules.toyworld import ToyWorldSFTDataModule
from tests.helpers import alpaca_rows, write_jsonl

MESSAGE = (r"^TaskAccuracy callback: AlpacaDataModule has no problems\(\) / prompt_text\(\); the callback scores "
           r"toy-world answers only\. Use callbacks=default with this data, or toy-world data \(data=toyworld, ")


class CountSteps(LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self.weight * 0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_non_toy_data_fails_at_setup_before_any_step(tmp_path):
    dm = AlpacaDataModule(path=str(write_jsonl(tmp_path / "a.jsonl", alpaca_rows(8))), val_size=2, batch_size=2)
    module = CountSteps()
    trainer = Trainer(callbacks=[TaskAccuracy()], max_steps=2, accelerator="cpu", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match=MESSAGE):
        trainer.fit(module, datamodule=dm)
    assert module.steps == 0 and trainer.global_step == 0


def test_toy_data_passes_setup():
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.datamodule = ToyWorldSFTDataModule(num_train=8, num_val=4)  # what fit(datamodule=...) attaches
    TaskAccuracy().setup(trainer, CountSteps(), "fit")
