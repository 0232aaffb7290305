"""The toy-world accuracy callback turns itself off on other data (one INFO line), so toy recipes run on files."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import LightningModule, Trainer

from src.callbacks.task_accuracy import TaskAccuracy
from src.datamodules.sft import AlpacaDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from tests.helpers import alpaca_rows, write_jsonl

MESSAGE = ("TaskAccuracy callback: off, AlpacaDataModule is not toy-world data (no problems() / prompt_text()), so "
           "val/accuracy is not logged; callbacks=default leaves it out")


class CountSteps(LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self.weight * 0

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.weight * 0)  # validation runs, and with it the callback's epoch-end hook

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_non_toy_data_turns_the_callback_off_with_one_info_line(tmp_path, caplog):
    """experiment=quickstart (callbacks=toyworld) with data=sft_file / alpaca trains instead of failing."""
    dm = AlpacaDataModule(path=str(write_jsonl(tmp_path / "a.jsonl", alpaca_rows(8))), val_size=2, batch_size=2)
    module, callback = CountSteps(), TaskAccuracy()
    trainer = Trainer(callbacks=[callback], max_steps=2, accelerator="cpu", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="src.callbacks.task_accuracy"):
        trainer.validate(module, datamodule=dm, verbose=False)  # setup runs again for fit: still one line
        trainer.fit(module, datamodule=dm)
    assert module.steps == 2 and trainer.global_step == 2
    assert [r.getMessage() for r in caplog.records] == [MESSAGE]
    assert not callback.enabled
    callback.on_validation_epoch_end(trainer, module)  # would call dm.problems(), which Alpaca lacks
    assert "val/accuracy" not in trainer.callback_metrics


def test_toy_data_keeps_it_on():
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.datamodule = ToyWorldSFTDataModule(num_train=8, num_val=4)  # what fit(datamodule=...) attaches
    callback = TaskAccuracy()
    callback.setup(trainer, CountSteps(), "fit")
    assert callback.enabled
