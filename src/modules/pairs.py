"""A preference batch, padded or packed, as the policy's and the reference's inputs and per-sequence sums.

Padded (``PreferenceCollator``): ``[chosen; rejected]`` stacked into ``[2B, T]`` rows with an attention mask, one
sequence per row. Packed (``data.packing=true``, ``PackedPairCollator``): the same ``2B`` sequences in ``[R, L]``
rows with restarting ``position_ids`` and no attention mask (Hugging Face attends within each sequence, see
``src/datamodules/packing.py``), and ``sequence_ids`` saying which sequence each token belongs to. Either way the
per-sequence sums come out ``[2B]``, chosen then rejected, so ``split_pairs`` and the losses never see the layout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from src.losses.head_outputs import HeadOutput
from src.losses.logprobs import concat_pairs, num_label_tokens, sum_per_sequence
from src.modules.head_path import HeadPath

Batch = dict[str, torch.Tensor]


class PairBatch(NamedTuple):
    input_ids: torch.Tensor  # (2B, T) padded, or (R, L) packed
    attention_mask: torch.Tensor | None  # (2B, T); None when packed (the positions delimit the sequences)
    position_ids: torch.Tensor | None  # (R, L) packed, restarting at 0 per sequence; None when padded
    labels: torch.Tensor  # like input_ids, unshifted; each packed sequence's first label is -100
    sequence_ids: torch.Tensor | None  # (R, L) packed: each token's sequence in [0, 2B); None when padded
    num_sequences: int  # 2B

    @property
    def packed(self) -> bool:
        return self.sequence_ids is not None

    def run(self, model: torch.nn.Module, path: HeadPath) -> HeadOutput:
        """``model``'s forward over these rows through the head ``path`` (:mod:`src.modules.head_path`)."""
        return path(model, self.input_ids, self.attention_mask, self.labels, self.position_ids)

    def logps(self, out: HeadOutput, average: bool = False) -> torch.Tensor:
        """``[2B]`` summed (or mean) response log-probs from :meth:`run`'s output, whatever the layout."""
        return out.sequence_logps(average, self.sequence_ids, self.num_sequences)

    def label_counts(self) -> torch.Tensor:
        """``[2B]`` response tokens of each sequence that the shifted loss sees."""
        return num_label_tokens(self.labels, per_row=True, sequence_ids=self.sequence_ids,
                                num_sequences=self.num_sequences)

    def sum_per_sequence(self, values: torch.Tensor) -> torch.Tensor:
        """Shifted per-position ``values`` (``[2B, T-1]`` or ``[R, L-1]``, 0 at ignored labels) summed to ``[2B]``."""
        return sum_per_sequence(values, self.sequence_ids, self.num_sequences)


def pair_batch(batch: Batch) -> PairBatch:
    """The model inputs of a padded or packed preference batch."""
    if "packed_input_ids" in batch:
        return PairBatch(batch["packed_input_ids"], None, batch["packed_position_ids"], batch["packed_labels"],
                         batch["packed_sequence_ids"], batch["packed_sequence_lengths"].shape[0])
    input_ids, attention_mask, labels = (concat_pairs(batch[f"chosen_{k}"], batch[f"rejected_{k}"])
                                         for k in ("input_ids", "attention_mask", "labels"))  # (2B, T) each
    return PairBatch(input_ids, attention_mask, None, labels, None, input_ids.shape[0])


def is_pair_batch(batch: Batch) -> bool:
    """A preference batch (padded or packed), as opposed to an SFT one."""
    return "chosen_input_ids" in batch or "packed_sequence_ids" in batch
