"""Preference data: the HH transcript parser by hand, pair encoding and masks, drop accounting, and collation."""

import pytest
import torch

from src.datamodules.hh import parse_hh_transcript, raw_hh_prompt
from src.datamodules.preference import HHPreferenceDataModule, UltraFeedbackPreferenceDataModule
from src.datamodules.rows import split_shared_prompt
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.losses.logprobs import IGNORE_INDEX
from tests.helpers import hh_rows, ultrafeedback_pref_rows, write_jsonl

U, A = "user", "assistant"


def msgs(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def trained_text(dm, ids, labels):
    return dm.tokenizer.decode([t for t, label in zip(ids, labels) if label != IGNORE_INDEX])


def prompt_ids(ids, labels):
    return ids[: next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)]


# --- the HH transcript parser -----------------------------------------------------------------------------------------


def test_hh_single_turn():
    assert parse_hh_transcript("\n\nHuman: Hi there\n\nAssistant: Hello!") == msgs((U, "Hi there"), (A, "Hello!"))


def test_hh_multi_turn_keeps_order_and_inner_newlines():
    text = "\n\nHuman: a\n\nAssistant: b\nstill b\n\nHuman: c\n\nAssistant: d"
    assert parse_hh_transcript(text) == msgs((U, "a"), (A, "b\nstill b"), (U, "c"), (A, "d"))


def test_hh_whitespace_is_stripped_and_leading_blank_line_optional():
    text = "  Human:   padded  \n\nAssistant:\tanswer \n\n"
    assert parse_hh_transcript(text) == msgs((U, "padded"), (A, "answer"))


def test_hh_empty_final_reply_parses_and_is_left_to_the_pair_check():
    assert parse_hh_transcript("\n\nHuman: q\n\nAssistant:") == msgs((U, "q"), (A, ""))


@pytest.mark.parametrize("text, reason", [
    ("\n\nAssistant: starts with the assistant\n\nHuman: q", "malformed_transcript"),
    ("\n\nHuman: one\n\nHuman: two\n\nAssistant: x", "malformed_transcript"),  # roles do not alternate
    ("\n\nHuman: only a question", "malformed_transcript"),
    ("\n\nHuman: q\n\nAssistant: a\n\nHuman: unanswered", "malformed_transcript"),  # ends on Human
    ("preamble\n\nHuman: q\n\nAssistant: a", "malformed_transcript"),  # text before the first turn
    ("no markers at all", "malformed_transcript"),
    (None, "missing_field"),
])
def test_hh_malformed_transcripts_give_a_reason(text, reason):
    assert parse_hh_transcript(text) == reason


def test_raw_hh_prompt_round_trips_the_transcript_head():
    prompt = msgs((U, "a"), (A, "b"), (U, "c"))
    assert raw_hh_prompt(prompt) == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"
    assert parse_hh_transcript(raw_hh_prompt(prompt) + " d") == prompt + msgs((A, "d"))


# --- the shared prompt of two conversations ---------------------------------------------------------------------------


def test_split_shared_prompt():
    prompt = msgs((U, "q1"), (A, "a1"), (U, "q2"))
    assert split_shared_prompt(prompt + msgs((A, "good")), prompt + msgs((A, "bad"))) == (
        prompt, msgs((A, "good")), msgs((A, "bad")))
    same = prompt + msgs((A, "x"))
    assert split_shared_prompt(same, same) == "identical_responses"
    assert split_shared_prompt(msgs((U, "q"), (A, "x")), msgs((U, "other"), (A, "y"))) == "no_shared_prompt"
    assert split_shared_prompt(prompt + msgs((A, " ")), prompt + msgs((A, "y"))) == "empty_response"
    assert split_shared_prompt(prompt + msgs((A, "x")), prompt) == "malformed_pair"


# --- DataModules -------------------------------------------------------------------------------------------------


def test_ultrafeedback_pairs_share_prompt_ids_and_train_only_the_final_reply(tmp_path):
    rows = ultrafeedback_pref_rows(6)
    dm = UltraFeedbackPreferenceDataModule(path=str(write_jsonl(tmp_path / "uf.jsonl", rows)), val_size=1, batch_size=3)
    dm.setup("fit")
    multi_turn = dm.encode(rows[0])  # row 0 has an earlier user/assistant exchange in its prompt
    c_ids, c_labels = multi_turn["chosen_input_ids"], multi_turn["chosen_labels"]
    r_ids, r_labels = multi_turn["rejected_input_ids"], multi_turn["rejected_labels"]
    assert prompt_ids(c_ids, c_labels) == prompt_ids(r_ids, r_labels)
    assert dm.tokenizer.decode(prompt_ids(c_ids, c_labels)) == (
        "<|user|>\nSay 0.<|end|>\n<|assistant|>\n0.<|end|>\n<|user|>\nWhat is 0 + 1?<|end|>\n<|assistant|>\n")
    assert trained_text(dm, c_ids, c_labels) == "0 + 1 = 1. The answer is 1.<|end|>\n"  # history "0." is not trained
    assert trained_text(dm, r_ids, r_labels) == "0 + 1 = 2. The answer is 2.<|end|>\n"
    assert [ex["index"] for ex in dm.datasets["train"].examples] == list(range(5))  # one row held out


def test_hh_raw_template_follows_the_dpo_reference_code(tmp_path):
    dm = HHPreferenceDataModule(path=str(write_jsonl(tmp_path / "hh.jsonl", hh_rows(3))), batch_size=3)
    ex = dm.encode(hh_rows(3)[0])
    head = dm.tokenizer.decode(prompt_ids(ex["chosen_input_ids"], ex["chosen_labels"]))
    assert head == "\n\nHuman: Hi, I am 0.\n\nAssistant: Hello 0.\n\nHuman: What is 0 + 1?\n\nAssistant:"
    assert trained_text(dm, ex["chosen_input_ids"], ex["chosen_labels"]) == " 0 + 1 = 1. The answer is 1.<|end|>"
    assert trained_text(dm, ex["rejected_input_ids"], ex["rejected_labels"]) == " I do not know.<|end|>"


def test_hh_chat_template(tmp_path):
    dm = HHPreferenceDataModule(path=str(write_jsonl(tmp_path / "hh.jsonl", hh_rows(3))), template="chat")
    ex = dm.encode(hh_rows(3)[1])
    assert dm.tokenizer.decode(ex["chosen_input_ids"]).startswith("<|user|>\nWhat is 1 + 1?<|end|>\n<|assistant|>\n")
    assert trained_text(dm, ex["rejected_input_ids"], ex["rejected_labels"]) == "I do not know.<|end|>\n"


def test_bad_pairs_are_dropped_with_counts(tmp_path):
    prompt = "\n\nHuman: q\n\nAssistant:"
    bad = [
        {"chosen": f"{prompt} same", "rejected": f"{prompt} same"},
        {"chosen": f"{prompt}", "rejected": f"{prompt} something"},
        {"chosen": "\n\nHuman: " + "long " * 200 + "\n\nAssistant: a", "rejected": "\n\nHuman: " + "long " * 200
         + "\n\nAssistant: b"},
        {"chosen": "\n\nAssistant: nonsense", "rejected": f"{prompt} fine"},
        {"chosen": "\n\nHuman: one\n\nAssistant: a", "rejected": "\n\nHuman: two\n\nAssistant: b"},
        {"rejected": f"{prompt} x"},
    ]
    path = write_jsonl(tmp_path / "hh.jsonl", hh_rows(4) + bad)
    dm = HHPreferenceDataModule(path=str(path), max_length=64, val_size=3)
    dm.setup("fit")
    assert dm.drop_counts["train"] + dm.drop_counts["val"] == {
        "identical_responses": 1, "empty_response": 1, "prompt_too_long": 1, "malformed_transcript": 1,
        "no_shared_prompt": 1, "missing_field": 1}
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 4


def test_truncation_that_makes_both_sides_equal_drops_the_pair(tmp_path):
    prompt = [{"role": "user", "content": "q"}]
    common = "word " * 60
    row = {"chosen": prompt + [{"role": "assistant", "content": common + "good"}],
           "rejected": prompt + [{"role": "assistant", "content": common + "bad"}]}
    path = write_jsonl(tmp_path / "uf.jsonl", [row] + ultrafeedback_pref_rows(2))
    dm = UltraFeedbackPreferenceDataModule(path=str(path), val_size=1, max_length=32)
    dm.setup("fit")
    assert dm.drop_counts["train"] + dm.drop_counts["val"] == {"identical_responses": 1}


def test_collation_pads_both_sides_to_one_length(tmp_path):
    dm = UltraFeedbackPreferenceDataModule(path=str(write_jsonl(tmp_path / "uf.jsonl", ultrafeedback_pref_rows(8))),
                                           val_size=4, batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    shape = batch["chosen_input_ids"].shape
    assert all(batch[f"{side}_{key}"].shape == shape for side in ("chosen", "rejected")
               for key in ("input_ids", "attention_mask", "labels"))
    assert torch.equal(batch["index"], torch.arange(4))
    for side in ("chosen", "rejected"):
        mask, labels, ids = batch[f"{side}_attention_mask"], batch[f"{side}_labels"], batch[f"{side}_input_ids"]
        assert (labels[mask == 0] == IGNORE_INDEX).all() and (ids[mask == 0] == dm.tokenizer.pad_token_id).all()
        lengths = mask.sum(-1)
        expected = [len(ex[f"{side}_input_ids"]) for ex in dm.datasets["val"].examples[:4]]
        assert lengths.tolist() == expected
    train = next(iter(dm.train_dataloader()))  # no trainer: each micro-batch is its own accumulation window
    counts = dm.label_token_counts("train")  # chosen-response tokens per pair, the SFT term's denominator
    assert int(train["num_items_in_batch"]) == sum(counts[i] for i in train["index"].tolist())


def test_toyworld_pairs_and_accuracy_hooks():
    dm = ToyWorldPreferenceDataModule(num_train=16, num_val=4, batch_size=4)
    dm.setup("fit")
    problems = dm.problems("val")
    assert len(problems) == 4 == len(dm.datasets["val"])
    ex = dm.datasets["val"][0]
    head = dm.tokenizer.decode(prompt_ids(ex["chosen_input_ids"], ex["chosen_labels"]))
    assert head == dm.prompt_text(problems[0].prompt)  # accuracy is measured on the prompt DPO trains on
    assert "The answer is " + problems[0].answer in trained_text(dm, ex["chosen_input_ids"], ex["chosen_labels"])
