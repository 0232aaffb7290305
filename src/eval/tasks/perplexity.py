"""Token-weighted NLL and perplexity of a DataModule's validation split (any of ``conf/data/``).

NLL = sum over every label token of -log p / number of label tokens (not a mean of per-batch means), so the
number does not depend on the batch size. ``seq_nll`` is the mean over sequences of each sequence's own token-mean
NLL: every scored sequence is a record in ``samples.jsonl`` (``id``: its position among the scored rows, the same
rows for the same data, ``limit`` and ``limit_seed``; ``nll``, ``tokens``), so ``python -m src.eval.compare`` gives
two models' ``seq_nll`` difference a paired bootstrap interval over sequences. The token-weighted ``nll`` is a ratio
of sums and gets none. The DataModule tokenizes with the evaluated model's tokenizer. ``limit``
scores a random subset of the validation rows (``src.eval.tasks.inputs.random_subset``): for LM-block data
(WikiText) those rows are lines, joined into blocks after the draw.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from src.datamodules.batching import EncodedDataset
from src.datamodules.encode import special_prefix
from src.eval.tasks.inputs import random_subset
from src.eval.tasks.task import EvalContext, EvalTask, TaskResult
from src.losses.logprobs import token_logps


class PerplexityTask(EvalTask):
    def __init__(self, data: Any, name: str = "ppl"):
        super().__init__(name)
        self.data = data

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> TaskResult:
        if ctx.model is None:
            raise ValueError("eval=ppl scores a model: give model_path=<run dir | hf dir | hub id>")
        dm = self.data
        dm.tokenizer, dm.prefix_ids = ctx.tokenizer, special_prefix(ctx.tokenizer)
        # Only the validation split is encoded, with the model's tokenizer and the prompt budget. data.val_limit, the
        # DataModule's own, still takes its first rows: the budget draws from those.
        rows = random_subset(dm.load_split("val"), ctx.limit, ctx.limit_seed, self.name)
        dm.datasets["val"] = EncodedDataset(dm.encode_rows(rows, "val"))
        model, device = ctx.model, next(ctx.model.parameters()).device
        was_training = model.training
        model.eval()
        sums, counts = [], []  # per sequence: summed NLL of its label tokens, their number
        try:
            for batch in dm.val_dataloader():  # not shuffled: sequence i of one model is sequence i of another
                labels = batch["labels"].to(device)
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits  # (B, T, V)
                logps, mask = token_logps(logits, labels)  # (B, T-1) each
                sums += (-logps.sum(-1)).tolist()
                counts += mask.sum(-1).tolist()
        finally:
            model.train(was_training)
        tokens = sum(counts)
        nll = sum(sums) / tokens
        records = [{"task": self.name, "id": i, "sample": 0, "nll": total / n, "tokens": n}
                   for i, (total, n) in enumerate(zip(sums, counts)) if n > 0]
        return TaskResult({"nll": nll, "ppl": math.exp(nll), "seq_nll": sum(r["nll"] for r in records) / len(records),
                           "tokens": tokens, "sequences": len(dm.datasets["val"])}, records)

