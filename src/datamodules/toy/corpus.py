"""The toy-world corpus as a language-model DataModule: problems written out as documents, cut into blocks."""

from __future__ import annotations

from typing import Any

from src.datamodules.toy.splits import ToyWorldSplits
from src.datamodules.wikitext import WikiTextDataModule
from src.toyworld.tasks import make_corpus


class ToyWorldCorpusDataModule(ToyWorldSplits, WikiTextDataModule):
    """``src.toyworld.tasks.make_corpus`` documents (train / held-out problems), one per row, EOS after each.

    A document reads ``"{prompt} {response}"``, so ``problems`` and ``prompt_text`` let the toy-world
    ``TaskAccuracy`` callback score the LM by continuing a held-out prompt.
    """

    def __init__(self, num_train: int = 2000, num_val: int = 200, block_size: int = 128, **kwargs: Any):
        kwargs.setdefault("tokenizer", "toy")
        kwargs.setdefault("append_eos", True)
        super().__init__(path="toyworld", name=None, block_size=block_size, **kwargs)
        self.num_train, self.num_val = num_train, num_val

    def prompt_text(self, prompt: str) -> str:
        return prompt  # the model continues with " <response>" and stops at the EOS that ends every document

    def load_split(self, split: str) -> list[dict[str, str]]:
        return [{"text": doc} for doc in make_corpus(*self.split_size(split), self.seed)]
