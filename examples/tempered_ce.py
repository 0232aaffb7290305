"""Tempered CE, an objective written outside ``src/``: cross-entropy on ``logits / T`` (docs/extending.md).

Two pieces and a registration: the loss with its forms (plain on logits, chunked from the hidden states and the LM
head), a module with one method, and ``register_objective``. Train it with

    POSTTRAIN_PLUGINS=tempered_ce PYTHONPATH=examples python train.py module=tempered_ce module.temperature=2.0

``module.loss_impl`` may be ``plain`` or ``chunked`` (the forms ``TEMPERED_CE`` offers); ``cce`` is refused by name.
"""

from src.api import register_objective
from src.losses.ce import ce_loss, chunked_ce_loss
from src.losses.forms import LossForms
from src.modules.base import PostTrainModule


def tempered_ce(logits, labels, temperature=2.0, num_items_in_batch=None):
    """logits [B, T, V], labels [B, T] unshifted: the CE of softmax(z / T)."""
    return ce_loss(logits / temperature, labels, num_items_in_batch=num_items_in_batch)


def chunked_tempered_ce(h, weight, targets, *, bias, chunk_size, temperature=2.0, num_items_in_batch=None):
    """The same from the kept hidden states h [N, D] and the head: (h W^T + b) / T = (h / T) W^T + b / T."""
    bias = None if bias is None else bias / temperature
    return chunked_ce_loss(h / temperature, weight, targets, bias, chunk_size, num_items_in_batch)


TEMPERED_CE = LossForms("tempered_ce", plain=tempered_ce, chunked=chunked_tempered_ce)


class TemperedCE(PostTrainModule):
    losses = (TEMPERED_CE,)

    def __init__(self, model, optimizer, scheduler=None, loss_impl="auto", loss_chunk_size=1024,
                 temperature: float = 2.0):
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        self.temperature = temperature

    def objective(self, out, num_items_in_batch):
        return out.loss(TEMPERED_CE, temperature=self.temperature, num_items_in_batch=num_items_in_batch), {}


register_objective("tempered_ce", TemperedCE)
