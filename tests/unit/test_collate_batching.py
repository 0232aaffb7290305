"""Collation pads correctly; the windowed sampler counts each accumulation window's label tokens."""

import torch
from torch.utils.data import SequentialSampler

from src.datamodules.batching import EncodedDataset, WindowedBatchSampler
from src.datamodules.collate import PreferenceCollator, SFTCollator


def test_sft_collator_pads_ids_mask_and_labels():
    batch = SFTCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]


def test_preference_collator_pads_both_sides_to_one_length():
    ex = {"chosen_input_ids": [1, 2], "chosen_labels": [-100, 2], "rejected_input_ids": [1, 2, 3, 4],
          "rejected_labels": [-100, 2, 3, 4]}
    batch = PreferenceCollator(pad_id=0)([ex])
    assert batch["chosen_input_ids"].shape == batch["rejected_input_ids"].shape == (1, 4)
    assert batch["chosen_labels"].tolist() == [[-100, 2, -100, -100]]


def test_windowed_sampler_attaches_window_token_totals():
    counts = [1, 2, 3, 4, 5]
    sampler = WindowedBatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False, window=2,
                                   token_counts=counts)
    batches = list(sampler)
    # windows: {[0,1],[2,3]} -> 1+2+3+4 = 10 ; {[4]} -> 5
    assert batches == [[(0, 10), (1, 10)], [(2, 10), (3, 10)], [(4, 5)]]
    dataset = EncodedDataset([{"input_ids": [i], "labels": [i]} for i in range(5)])
    collated = SFTCollator(0)([dataset[key] for key in batches[0]])
    assert collated["num_items_in_batch"] == torch.tensor(10)


def test_ranks_share_each_global_batch():
    """2 ranks at batch 2 train on exactly the examples 1 process trains on at batch 4, step by step, and their
    window token counts add up to the single process's."""
    from src.datamodules.batching import WindowedBatchSampler

    order, tokens = [7, 3, 0, 5, 1, 6, 2, 4, 8], [10 + i for i in range(9)]
    single = list(WindowedBatchSampler(order, 4, drop_last=False, window=2, token_counts=tokens))
    ranks = [list(WindowedBatchSampler(order, 2, drop_last=False, window=2, token_counts=tokens, rank=r, world=2))
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # the last global batch (one example) is smaller than the world
    for step, batch in enumerate(single[:2]):
        shares = [dict(ranks[r][step]) for r in range(2)]
        assert sorted(i for share in shares for i in share) == sorted(i for i, _ in batch)
        assert sum(next(iter(share.values())) for share in shares) == batch[0][1]  # the window's tokens
