"""The two-stream DataModule: independent cycling, reshuffled passes, rank shards, exact window token counts."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from src.datamodules.batching import EncodedDataset
from src.datamodules.interleave_streams import CyclingStream, InterleaveDataModule
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule


def ids_stream(n: int, batch_size: int = 2, **kwargs) -> CyclingStream:
    """A stream over examples whose only field is their own index (and ``index + 1`` label tokens)."""
    dataset = EncodedDataset([{"i": i} for i in range(n)])
    collate = lambda rows: {"i": torch.tensor([r["i"] for r in rows]),  # noqa: E731
                            "num_items_in_batch": torch.tensor(rows[0]["num_items_in_batch"])}
    return CyclingStream(dataset, batch_size, collate, token_counts=[i + 1 for i in range(n)], **kwargs)


def take(stream: CyclingStream, batches: int) -> list[list[int]]:
    return [stream.next()["i"].tolist() for _ in range(batches)]


def test_each_pass_is_a_fresh_seeded_permutation():
    stream = ids_stream(10, batch_size=5, seed=1)
    passes = [sum(take(stream, 2), []) for _ in range(3)]
    assert all(sorted(p) == list(range(10)) for p in passes)  # every example once per pass
    assert passes[0] != passes[1] != passes[2]  # reshuffled per pass
    assert sum(take(ids_stream(10, batch_size=5, seed=1), 2), []) == passes[0]  # seeded
    assert stream.epochs_seen == 3.0


def test_windows_carry_their_exact_token_count_across_pass_boundaries():
    stream = ids_stream(5, batch_size=2, window=3, seed=0)  # a window (6 examples) is longer than a pass (5)
    for _ in range(4):
        window = [stream.next() for _ in range(3)]
        examples = torch.cat([b["i"] for b in window])
        assert all(int(b["num_items_in_batch"]) == int((examples + 1).sum()) for b in window)
    assert stream.consumed == 24 and stream.epochs_seen == pytest.approx(24 / 5)


def test_rank_shards_are_disjoint_and_equal():
    shards = [sum(take(ids_stream(11, batch_size=5, rank=r, world=2, seed=4), 1), []) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5 and not set(shards[0]) & set(shards[1])


def test_state_round_trip_continues_the_same_sequence():
    full = take(ids_stream(7, batch_size=3, seed=2), 9)
    first = ids_stream(7, batch_size=3, seed=2)
    head = take(first, 4)
    resumed = ids_stream(7, batch_size=3, seed=2)
    resumed.load_state_dict(first.state_dict())
    assert head + take(resumed, 5) == full


@pytest.fixture(scope="module")
def dm():
    dm = InterleaveDataModule(ToyWorldSFTDataModule(num_train=24, num_val=8, batch_size=4, seed=0),
                              ToyWorldPreferenceDataModule(num_train=10, num_val=6, batch_size=2, seed=0),
                              probe_batches=2)
    dm.setup("fit")
    return dm


def test_only_the_pulled_stream_advances(dm):
    dm.build_streams()
    for _ in range(3):
        assert "input_ids" in dm.next_batch("sft")
    assert dm.coverage() == {"sft": 0.5, "dpo": 0.0}
    for _ in range(7):  # 14 pairs: the 10-pair stream wraps on its own
        assert "chosen_input_ids" in dm.next_batch("dpo")
    assert dm.coverage() == {"sft": 0.5, "dpo": 1.4}
    restored = InterleaveDataModule(dm.sources["sft"], dm.sources["dpo"])
    restored.load_state_dict(dm.state_dict())  # before the streams exist, as on resume
    restored.build_streams()
    assert restored.coverage() == dm.coverage()


def test_validation_has_an_sft_and_a_preference_loader_and_fixed_probes(dm):
    sft, prefs = dm.val_dataloader()
    assert "input_ids" in next(iter(sft)) and "chosen_input_ids" in next(iter(prefs))
    probes = dm.probe_batches()
    assert [len(probes[k]) for k in ("sft", "dpo")] == [2, 2]
    assert dm.probe_batches() is probes  # the same batches at every refresh
    assert torch.equal(probes["sft"][0]["input_ids"], next(iter(sft))["input_ids"])


def test_streams_use_their_own_batch_sizes_and_window_token_counts(dm):
    dm.build_streams(window=2)
    first, second = dm.next_batch("sft"), dm.next_batch("sft")
    tokens = Counter()
    for b in (first, second):
        tokens["kept"] += int((b["labels"][:, 1:] != -100).sum())
    assert first["input_ids"].shape[0] == 4 and int(first["num_items_in_batch"]) == tokens["kept"]
    assert dm.next_batch("dpo")["chosen_input_ids"].shape[0] == 2


def test_mismatched_tokenizers_name_the_key():
    prefs = ToyWorldPreferenceDataModule(num_train=8, num_val=4)
    prefs.tokenizer.add_tokens(["<extra_token>"])  # a vocabulary unlike the SFT stream's: one model cannot serve both
    with pytest.raises(ValueError, match=r"data\.prefs\.tokenizer"):
        InterleaveDataModule(ToyWorldSFTDataModule(num_train=8, num_val=4), prefs)


def test_style_pairs_prefer_the_shortest_correct_phrasing():
    from src.datamodules.toy.style_pairs import make_style_preferences
    from src.toyworld.tasks import answer_is_correct, make_problems

    pairs = make_style_preferences(40, "train", seed=3)
    for pair, problem in zip(pairs, make_problems(40, "train", seed=3)):
        assert pair["prompt"] == problem.prompt
        assert pair["chosen"] == min(problem.responses, key=len) and pair["rejected"] in problem.responses
        assert len(pair["rejected"]) > len(pair["chosen"])
        assert answer_is_correct(pair["chosen"], problem.answer) and answer_is_correct(pair["rejected"], problem.answer)
