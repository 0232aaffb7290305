"""RNGState: the global random state goes into a checkpoint and comes back at the first training batch, not before."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from src.callbacks.rng_state import RNGState


def draws() -> tuple:
    return torch.rand(3).tolist(), random.random(), np.random.rand()


def test_the_saved_state_comes_back_at_the_first_batch():
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    buffer = io.BytesIO()
    torch.save(RNGState().state_dict(), buffer)  # as in a checkpoint, which Lightning loads with weights_only=True
    expected = draws()

    restored = RNGState()
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.manual_seed(2)  # the resumed run's start-up draws from another state
    draws()
    restored.on_train_batch_start(None, None, None, 0)
    assert draws() == expected
    restored.on_train_batch_start(None, None, None, 1)  # only once: later batches go on drawing
    assert draws() != expected
