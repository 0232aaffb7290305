"""The one place for log-prob machinery: shift by one, gather, mask ``-100``, reduce per sequence, split pairs.

Conventions (Hugging Face causal LM): ``logits`` is ``[B, T, V]`` for positions ``0..T-1`` and ``labels`` is
``[B, T]``, *unshifted*. Position ``t`` predicts ``labels[:, t + 1]``, so every function here drops the last
logit and the first label. ``ignore_index`` (``-100``) marks prompt and padding tokens.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align predictions with targets: ``[B, T, V], [B, T] -> [B, T-1, V], [B, T-1]``."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    return logits[:, :-1], labels[:, 1:]


def shift_labels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Targets aligned with *every* position: ``[B, T] -> [B, T]``, ``out[:, t] = labels[:, t + 1]``, last = ignored.

    Shifting the labels instead of the logits (Hugging Face's ``ForCausalLMLoss`` does the same) lets a loss index
    ``logits [B, T, V]`` or hidden states ``[B, T, D]`` as they are: ``logits[:, :-1].reshape(-1, V)`` is a copy.
    """
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=ignore_index)


def target_mask(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask, safe_labels)``: mask is True on kept tokens; ignored labels become 0 so ``gather`` stays in range."""
    mask = labels != ignore_index
    return mask, labels.masked_fill(~mask, 0)


def num_label_tokens(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, per_row: bool = False,
                     sequence_ids: torch.Tensor | None = None, num_sequences: int = 0) -> torch.Tensor:
    """Kept label tokens after the shift: a 0-d long tensor for the batch, or per sequence with ``per_row=True``:
    ``[B]`` per row, or ``[num_sequences]`` for packed rows (``sequence_ids``, see :func:`sum_per_sequence`)."""
    kept = labels[:, 1:] != ignore_index  # (B, T-1)
    return sum_per_sequence(kept.long(), sequence_ids, num_sequences) if per_row else kept.sum()


def sum_per_sequence(values: torch.Tensor, sequence_ids: torch.Tensor | None = None,
                     num_sequences: int = 0) -> torch.Tensor:
    """Shifted per-token ``values [B, T-1]`` (0 where the label is ignored) summed per sequence.

    Unpacked, a row is a sequence: ``[B]``. Packed rows hold several: ``sequence_ids [B, T]`` (unshifted, aligned
    with the labels) names each token's sequence in ``[0, num_sequences)``, and the sums are ``[num_sequences]``.
    Position ``t`` predicts label ``t + 1``, so it counts for the sequence of token ``t + 1``; a sequence's first
    label is ignored (``src/datamodules/packing.py``), so no kept position predicts across a boundary.
    """
    if sequence_ids is None:
        return values.sum(-1)
    index = sequence_ids[:, 1:].reshape(-1)  # (B * (T-1),) every position, so no boolean indexing (no device sync)
    return values.new_zeros(num_sequences).index_add_(0, index, values.reshape(-1))


def gather_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., targets]`` without materialising the full log-softmax.

    Half-precision logits are upcast to fp32 first: ``logsumexp`` over a 128k vocabulary in bf16 loses ~2 digits.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def kept_logits(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift, then keep only the rows whose label is kept: ``[B, T, V], [B, T] -> z [N, V], y [N]``.

    For full-vocabulary losses (GEM, EMO) that work on the flattened kept tokens, as their official code does.
    Half precision is upcast to fp32 *after* the selection, so only the N kept rows are copied.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    targets = shift_labels(labels, ignore_index)  # (B, T)
    mask = targets != ignore_index
    z = logits[mask]  # (N, V): only the kept rows are gathered
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    return z, targets[mask]


def token_logps(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the shifted labels.

    Returns ``(logps [B, T-1], mask [B, T-1])``; ``logps`` is 0 where the label is ignored.
    """
    logits, labels = shift(logits, labels)
    mask, safe = target_mask(labels, ignore_index)
    logps = gather_logps(logits, safe)  # (B, T-1)
    # masked_fill, not `* mask`: a -inf logit on the dummy token 0 at an ignored position would give -inf * 0 = NaN.
    return logps.masked_fill(~mask, 0.0), mask


def sequence_logps(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, average: bool = False,
    sequence_ids: torch.Tensor | None = None, num_sequences: int = 0,
) -> torch.Tensor:
    """``[B]`` sum (or mean, ``average=True``) of the log-probs of each row's kept label tokens; for packed rows,
    ``[num_sequences]`` per sequence of ``sequence_ids`` (:func:`sum_per_sequence`).

    A sequence with no kept token sums to 0; its mean is 0 too (no 0/0).
    """
    logps, mask = token_logps(logits, labels, ignore_index)
    total = sum_per_sequence(logps, sequence_ids, num_sequences)
    if not average:
        return total
    return total / sum_per_sequence(mask.long(), sequence_ids, num_sequences).clamp(min=1)


def concat_pairs(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Stack ``[chosen; rejected]`` along the batch so one forward pass serves both: ``2 x [B, T] -> [2B, T]``."""
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} must be padded alike")
    return torch.cat([chosen, rejected], dim=0)


def split_pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`concat_pairs` on the batch dimension: ``[2B, ...] -> [B, ...], [B, ...]``."""
    if x.shape[0] % 2:
        raise ValueError(f"a [chosen; rejected] batch has an even size, got {x.shape[0]}")
    half = x.shape[0] // 2
    return x[:half], x[half:]
