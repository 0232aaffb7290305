"""Block grouping of LM corpora (run_clm's group_texts): exact blocks on a hand-made file, limits, the toy corpus."""

from __future__ import annotations

import pytest

from src.datamodules.toy.corpus import ToyWorldCorpusDataModule
from src.datamodules.wikitext import WikiTextDataModule
from src.toyworld.tasks import make_corpus

WORDS = ["cat", "dog", "sun", "moon", "tree", "fish", "bird", "rain", "star", "lamp", "door", "milk"]


def line_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def write(path, lines: list[str]):
    path.write_text("".join(lines))
    return path


def blocks(dm: WikiTextDataModule, split: str) -> list[list[int]]:
    return [ex["input_ids"] for ex in dm.datasets[split].examples]


@pytest.fixture
def corpus(tmp_path, tokenizer):
    """Eight train lines (two empty) then a two-line validation tail."""
    lines = [f" {WORDS[i]} and {WORDS[i + 1]} met .\n" if i % 4 != 3 else "\n" for i in range(8)]
    lines += [" the star and the lamp .\n", " the door and the milk .\n"]
    return write(tmp_path / "wiki.train.raw", lines), lines


def test_blocks_are_the_concatenated_line_stream_cut_at_block_size(corpus, tokenizer):
    path, lines = corpus
    dm = WikiTextDataModule(path=str(path), block_size=5, val_size=2)
    dm.setup()
    stream = [t for line in lines[:8] if line.strip() for t in line_ids(tokenizer, line)]
    n = len(stream) // 5
    assert n >= 3 and len(stream) % 5  # several blocks and a non-empty remainder, so the test can see both
    assert blocks(dm, "train") == [stream[5 * i:5 * i + 5] for i in range(n)]
    assert all(ex["labels"] == ex["input_ids"] for ex in dm.datasets["train"].examples)
    assert dm.block_stats["train"] == {"tokens": len(stream), "blocks": n, "dropped_tokens": len(stream) % 5}
    assert dm.drop_counts["train"] == {"empty_line": 2}
    val_stream = line_ids(tokenizer, lines[8]) + line_ids(tokenizer, lines[9])
    assert blocks(dm, "val") == [val_stream[5 * i:5 * i + 5] for i in range(len(val_stream) // 5)]


def test_newlines_are_kept_so_paragraphs_do_not_glue(corpus, tokenizer):
    path, lines = corpus
    dm = WikiTextDataModule(path=str(path), block_size=4, val_size=2)
    dm.setup()
    text = tokenizer.decode([t for b in blocks(dm, "train") for t in b])
    assert text.startswith(" cat and dog met .\n dog and sun met .\n")


def test_limit_counts_lines_before_grouping(corpus, tokenizer):
    path, lines = corpus
    dm = WikiTextDataModule(path=str(path), block_size=2, val_size=2, limit=2, val_limit=1)
    dm.setup()
    stream = line_ids(tokenizer, lines[0]) + line_ids(tokenizer, lines[1])
    assert [t for b in blocks(dm, "train") for t in b] == stream[: len(stream) // 2 * 2]
    assert dm.block_stats["val"]["tokens"] == len(line_ids(tokenizer, lines[8]))


def test_val_path_replaces_the_held_out_tail(corpus, tmp_path, tokenizer):
    path, lines = corpus
    val = write(tmp_path / "wiki.valid.raw", [" the star and the lamp .\n"] * 3)
    dm = WikiTextDataModule(path=str(path), val_path=str(val), block_size=3)
    dm.setup()
    assert dm.block_stats["train"]["tokens"] == sum(len(line_ids(tokenizer, line)) for line in lines if line.strip())
    assert dm.block_stats["val"]["tokens"] == 3 * len(line_ids(tokenizer, " the star and the lamp .\n"))


def test_every_block_starts_with_the_tokenizer_prefix(corpus, tokenizer):
    path, lines = corpus
    dm = WikiTextDataModule(path=str(path), block_size=5, val_size=2)
    dm.prefix_ids = [tokenizer.bos_token_id]  # what special_prefix finds for a Llama tokenizer
    dm.setup()
    stream = [t for line in lines[:8] if line.strip() for t in line_ids(tokenizer, line)]
    assert blocks(dm, "train")[:2] == [[tokenizer.bos_token_id] + stream[:4], [tokenizer.bos_token_id] + stream[4:8]]


def test_too_little_text_for_one_block_names_the_key(corpus):
    path, _ = corpus
    with pytest.raises(ValueError, match=r"data\.block_size=512"):
        WikiTextDataModule(path=str(path), block_size=512, val_size=2).setup()
    with pytest.raises(ValueError, match=r"data\.val_size"):
        WikiTextDataModule(path=str(path), val_size=10).setup()


def test_batches_are_full_blocks_with_the_window_token_count(corpus):
    path, _ = corpus
    dm = WikiTextDataModule(path=str(path), block_size=4, val_size=2, batch_size=2)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (2, 4) and bool(batch["attention_mask"].all())
    assert int(batch["num_items_in_batch"]) == 2 * 3  # each block trains on block_size - 1 shifted labels


def test_toy_corpus_mode_is_the_document_stream_with_eos_after_each(tokenizer):
    dm = ToyWorldCorpusDataModule(limit=12, val_limit=6, block_size=32, seed=0)
    dm.setup()
    docs = make_corpus(12, "train", seed=0)
    stream = [t for doc in docs for t in line_ids(tokenizer, doc) + [tokenizer.eos_token_id]]
    assert blocks(dm, "train") == [stream[32 * i:32 * i + 32] for i in range(len(stream) // 32)]
    assert not set(docs) & set(make_corpus(6, "test", seed=0))  # validation documents are held-out problems
    assert dm.block_stats["val"]["tokens"] == sum(len(line_ids(tokenizer, d)) + 1 for d in make_corpus(6, "test", 0))


def test_toy_corpus_problems_are_the_documents_prompts():
    dm = ToyWorldCorpusDataModule(num_val=5, seed=3)
    docs = make_corpus(5, "test", seed=3)
    assert [dm.prompt_text(p.prompt) + " " + p.responses[1] for p in dm.problems("val")] == docs
