"""The shared log-prob helper against explicit log_softmax indexing, on hand-built tensors."""

import math

import pytest
import torch

from src.losses.logprobs import (
    concat_pairs,
    num_label_tokens,
    sequence_logps,
    shift,
    split_pairs,
    token_logps,
)


def hand_example() -> tuple[torch.Tensor, torch.Tensor]:
    """``[1, 3, V=4]`` logits; labels ``[-100, 2, 1]``: position 0 predicts token 2, position 1 predicts token 1."""
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], [9.0, 0.0, 0.0, 0.0]]])  # (1, 3, 4)
    labels = torch.tensor([[-100, 2, 1]])  # (1, 3); the last logit row predicts nothing
    return logits, labels


def test_sequence_logps_sum_and_mean_match_explicit_log_softmax():
    logits, labels = hand_example()
    lsm = torch.log_softmax(logits, dim=-1)
    expected = lsm[0, 0, 2] + lsm[0, 1, 1]
    # By hand: (2 - logsumexp(0, 1, 2, 3)) + log(1/4) = -1.4401897 - 1.3862944 = -2.8264841.
    torch.testing.assert_close(expected, torch.tensor(-2.8264841))
    torch.testing.assert_close(sequence_logps(logits, labels), expected.reshape(1))
    torch.testing.assert_close(sequence_logps(logits, labels, average=True), (expected / 2).reshape(1))


def test_token_logps_masks_ignored_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)  # (B, T, V)
    labels = torch.tensor([[-100, 3, -100, 0], [4, 1, 2, -100]])
    logps, mask = token_logps(logits, labels)  # (B, T-1) each
    expected_mask = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.equal(mask, expected_mask)
    lsm = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, T-1, V)
    expected = torch.tensor([[lsm[0, 0, 3], 0.0, lsm[0, 2, 0]], [lsm[1, 0, 1], lsm[1, 1, 2], 0.0]])
    torch.testing.assert_close(logps, expected)
    # The sum over the kept tokens only; the mean divides by the kept count (2 per row here).
    torch.testing.assert_close(sequence_logps(logits, labels), expected.sum(-1))
    torch.testing.assert_close(sequence_logps(logits, labels, average=True), expected.sum(-1) / 2)


@pytest.mark.parametrize("average", [False, True])
def test_row_without_kept_tokens_is_zero_not_nan(average):
    logits, labels = hand_example()
    logits = torch.cat([logits, logits])  # (2, 3, 4)
    labels = torch.cat([labels, torch.full_like(labels, -100)])  # second row: nothing kept
    out = sequence_logps(logits, labels, average=average)
    full = -2.8264841 / 2 if average else -2.8264841
    torch.testing.assert_close(out, torch.tensor([full, 0.0]))


def test_minus_inf_logit_at_ignored_position_does_not_poison_row():
    # Ignored labels are gathered as dummy token 0; a -inf logit there once gave -inf * 0 = NaN.
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 0] = float("-inf")
    labels = torch.tensor([[-100, -100, 2]])  # only position 1 is kept, with uniform logits
    torch.testing.assert_close(sequence_logps(logits, labels), torch.tensor([math.log(0.25)]))


def test_bf16_logits_are_upcast():
    torch.manual_seed(0)
    logits32 = torch.randn(2, 6, 50) * 4
    labels = torch.randint(0, 50, (2, 6))
    labels[:, :2] = -100
    out16 = sequence_logps(logits32.bfloat16(), labels)
    assert out16.dtype == torch.float32
    # Upcast before logsumexp: identical to fp32 on the same (rounded) values ...
    torch.testing.assert_close(out16, sequence_logps(logits32.bfloat16().float(), labels), rtol=0, atol=0)
    # ... and within bf16's input rounding of the fp32-logit result: each logit moves by <= 2^-9 * |logit| <~ 0.03
    # (|logit| <~ 16), a token log-prob by <= twice that, a 4-token sum by <= 0.25 (0.04 observed).
    torch.testing.assert_close(out16, sequence_logps(logits32, labels), rtol=0, atol=0.25)


def test_shift_aligns_and_checks_shapes():
    logits, labels = hand_example()
    shifted_logits, shifted_labels = shift(logits, labels)
    assert shifted_logits.shape == (1, 2, 4)
    assert torch.equal(shifted_labels, torch.tensor([[2, 1]]))
    with pytest.raises(ValueError, match="disagree"):
        shift(logits, torch.zeros(1, 4, dtype=torch.long))


def test_concat_split_round_trip_and_errors():
    chosen, rejected = torch.arange(10).reshape(2, 5), -torch.arange(10).reshape(2, 5)
    both = concat_pairs(chosen, rejected)  # (2B, T)
    assert both.shape == (4, 5)
    c, r = split_pairs(both)
    assert torch.equal(c, chosen) and torch.equal(r, rejected)
    with pytest.raises(ValueError, match="padded alike"):
        concat_pairs(chosen, rejected[:, :4])
    with pytest.raises(ValueError, match="even"):
        split_pairs(torch.zeros(3, 5))


def test_num_label_tokens_counts_shifted_kept_labels():
    # The first label is never a target (nothing predicts it), even when it is not -100.
    labels = torch.tensor([[7, -100, 3, 4], [-100, 5, -100, -100]])
    assert num_label_tokens(labels).item() == 3
    assert num_label_tokens(labels).dtype == torch.long
    assert num_label_tokens(labels, per_row=True).tolist() == [2, 1]  # (B,): DPO's per-response lengths
