"""PostTrainModule's shared machinery without a Trainer: the typed step result and the global token denominator."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import torch

from src.datamodules.collate import pad_batch
from src.losses.ce import ce_loss
from src.losses.logprobs import num_label_tokens
from src.modules.backbones import tiny_llama
from src.modules.base import StepResult
from src.modules.ce import CEModule


class TwoRanks:
    """A strategy stub for 2 ranks that hold the same batch: ``reduce(sum)`` doubles."""

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        return tensor * 2


def module_on(tokenizer, accumulate: int = 3, world_size: int = 2) -> CEModule:
    module = CEModule(model=partial(tiny_llama, tokenizer, hidden_size=16, num_layers=1, num_heads=2),
                      optimizer=torch.optim.SGD)
    module._trainer = SimpleNamespace(strategy=TwoRanks(), accumulate_grad_batches=accumulate, world_size=world_size,
                                      log_every_n_steps=1, global_step=0, max_steps=-1,
                                      fast_dev_run=False, should_stop=False)
    return module


def test_token_denominator_is_the_global_count_over_k_times_world_size(tokenizer):
    """12 tokens per rank, 2 ranks -> N = 24 in the window; k = 3, W = 2 -> 24 / 6 = 4. Lightning's 1/k and DDP's
    1/W then turn each micro-batch's ``sum / 4`` into ``sum_all / 24``, the exact global token mean."""
    module = module_on(tokenizer)
    denominator = module.token_denominator({"num_items_in_batch": torch.tensor(12)})
    torch.testing.assert_close(denominator, torch.tensor(4.0), rtol=0, atol=0)
    empty = module.token_denominator({"num_items_in_batch": torch.tensor(0)})  # never a division by 0
    torch.testing.assert_close(empty, torch.tensor(1 / 6), rtol=0, atol=1e-7)


def test_sft_step_returns_the_loss_its_tokens_and_the_logged_token_mean(tokenizer):
    module = module_on(tokenizer, accumulate=1, world_size=1)
    module.configure_model()
    examples = [{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]},
                {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}]
    batch = pad_batch(examples, tokenizer.pad_token_id)
    batch["num_items_in_batch"] = torch.tensor(10)  # reduced to 20 by the stub: the loss is sum / 20
    result = module.step(batch, "train")
    assert isinstance(result, StepResult) and result.loss.requires_grad
    assert int(result.tokens) == int(num_label_tokens(batch["labels"])) == 5
    with torch.no_grad():
        mean = ce_loss(module(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    torch.testing.assert_close(result.loss.detach(), mean * 5 / 20)  # the gradient's normalisation ...
    torch.testing.assert_close(result.metrics["loss"], mean)  # ... is not what gets logged
    assert not any(key.startswith("_") for key in result.metrics)
