"""Preference DataModules: each row becomes one shared prompt and two responses, encoded as a chosen/rejected pair.

Both sides are built from the same prompt segments, tokenized segment by segment (``encode_segments``), so the
prompt ids are identical on both sides and a BPE merge at the prompt/response boundary cannot shift the mask. An
example holds ``{chosen,rejected}_{input_ids,labels}`` (prompt and padding labelled -100) and ``index``, its position
in the split, which the precomputed reference uses to look up cached log-probs.

Dropped pairs, counted per reason in ``drop_counts`` and logged: ``identical_responses`` (also when truncation makes
the two sequences equal), ``empty_response``, ``prompt_too_long`` (the prompt alone fills ``max_length``),
``no_shared_prompt`` / ``malformed_pair`` (the two conversations do not share a prompt and then differ in the
assistant's reply), ``malformed_transcript`` (HH) and ``missing_field`` / ``malformed_message``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from src.datamodules.collate import PreferenceCollator
from src.datamodules.datamodule import PostTrainDataModule
from src.datamodules.encode import encode_segments
from src.datamodules.formats import Format, detect_preference_format, detection_line, first_rows
from src.datamodules.hh import MARKERS, raw_hh_prompt
from src.datamodules.packing import PackedPairCollator
from src.datamodules.rows import Messages, PairParts, preference_example
from src.datamodules.sources import check_val_size, train_val_rows
from src.datamodules.templates import Segment, chat_segments
from src.losses.logprobs import IGNORE_INDEX
from src.utils.checks import require_choice

log = logging.getLogger(__name__)
Pair = tuple[list[Segment], list[Segment]]


class PreferenceDataModule(PostTrainDataModule):
    """Pairs from ``path`` (hub id or local json/jsonl/parquet); a subclass turns a row into two segment lists.

    ``val_split: null`` or a local file holds out ``val_size`` of the train rows instead: a whole number of rows, or
    a fraction, rounded, at least 1 row and at most 200 (``sources.held_out_count``).

    ``packing``: each training batch's ``2B`` sequences go to the model packed into rows of at most ``max_length``
    tokens (:class:`~src.datamodules.packing.PackedPairCollator`); the same DPO loss with no padding between
    sequences. Validation stays unpacked.
    """

    def __init__(self, path: str, name: str | None = None, train_split: str = "train", val_split: str | None = "test",
                 val_size: float = 0.05, packing: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        check_val_size(val_size)
        self.path, self.name, self.train_split, self.val_split = path, name, train_split, val_split
        self.val_size, self.packing = val_size, packing
        self.rows: tuple[Any, Any] | None = None  # (train, val), loaded together so they can be checked for overlap

    def load_split(self, split: str) -> Any:
        if self.rows is None:
            self.rows = train_val_rows(self.path, self.name, self.train_split, self.val_split, self.val_size, self.seed,
                                       self.limit, self.val_limit)
        return self.rows[0 if split == "train" else 1]

    def pair(self, row: dict[str, Any]) -> Pair | str:
        """``(chosen segments, rejected segments)`` sharing their prompt segments, or the reason to drop the row."""
        raise NotImplementedError

    def encode(self, row: dict[str, Any]) -> dict[str, Any] | str:
        pair = self.pair(row)
        if isinstance(pair, str):
            return pair
        chosen, rejected = (encode_segments(self.tokenizer, s, self.max_length, self.prefix_ids) for s in pair)
        if isinstance(chosen, str) or isinstance(rejected, str):
            return chosen if isinstance(chosen, str) else rejected
        if chosen["input_ids"] == rejected["input_ids"]:
            return "identical_responses"
        return {f"{side}_{key}": enc[key] for side, enc in (("chosen", chosen), ("rejected", rejected))
                for key in ("input_ids", "labels")}

    def encode_rows(self, rows: Any, split: str) -> list[dict[str, Any]]:
        examples = super().encode_rows(rows, split)
        for index, example in enumerate(examples):
            example["index"] = index
        return examples

    def label_token_counts(self, split: str) -> list[int]:
        """Chosen-response tokens per pair: the denominator of the optional SFT term (``module.sft_weight``)."""
        return [sum(label != IGNORE_INDEX for label in ex["chosen_labels"][1:]) for ex in self.datasets[split].examples]

    def collate_fn(self) -> Callable:
        return PreferenceCollator(self.tokenizer.pad_token_id)

    def train_collate_fn(self) -> Callable:
        return PackedPairCollator(self.tokenizer.pad_token_id, self.max_length) if self.packing else self.collate_fn()


class AutoPreferenceDataModule(PreferenceDataModule):
    """Pairs in any format ``formats.py`` detects from the first rows (``data=prefs_file``): flat ``prompt`` /
    ``chosen`` / ``rejected`` strings (TRL's standard form), conversational message lists with or without a separate
    prompt, or Anthropic HH transcripts; one INFO line names the format and its field mapping.

    ``template="chat"`` renders every pair with the tokenizer's chat template (a string prompt is one user turn, a
    string response one assistant turn). ``template="raw"`` keeps text as it is: a flat pair is ``prompt`` then
    ``response + eos``; a conversation becomes an HH transcript, prompt up to and including the final
    "\\n\\nAssistant:" and response ``" " + reply + eos``, as the DPO paper's code does for HH
    (eric-mitchell/direct-preference-optimization, ``preference_datasets.get_hh``) and as base models such as
    Pythia expect.
    """

    def __init__(self, path: str, val_split: str | None = None, template: str = "chat", **kwargs: Any):
        super().__init__(path=path, val_split=val_split, **kwargs)
        require_choice("data.template", template, ("chat", "raw"))
        self.template = template
        self.format: Format | None = None

    def load_split(self, split: str) -> Any:
        fresh = self.rows is None
        rows = super().load_split(split)
        if fresh:
            sample = first_rows(self.rows[0])
            self.format = detect_preference_format(sample, f"data.path={self.path}")
            log.info("data.path=%s: preference format detected: %s", self.path, detection_line(self.format, sample))
        return rows

    def pair(self, row: dict[str, Any]) -> Pair | str:
        parts = preference_example(row, self.format or detect_preference_format([row], "row"))
        return parts if isinstance(parts, str) else render_pair(self.tokenizer, parts, self.template)


class UltraFeedbackPreferenceDataModule(AutoPreferenceDataModule):
    """HuggingFaceH4/ultrafeedback_binarized ``train_prefs`` / ``test_prefs``: ``chosen`` and ``rejected`` are message
    lists whose shared prefix is the prompt, rendered with the tokenizer's chat template (the Zephyr DPO data). A
    local file may hold any format ``AutoPreferenceDataModule`` detects (flat ``prompt`` / ``chosen`` /
    ``rejected`` strings too)."""

    def __init__(self, path: str = "HuggingFaceH4/ultrafeedback_binarized", train_split: str = "train_prefs",
                 val_split: str = "test_prefs", **kwargs: Any):
        super().__init__(path=path, train_split=train_split, val_split=val_split, template="chat", **kwargs)


class HHPreferenceDataModule(AutoPreferenceDataModule):
    """Anthropic/hh-rlhf ``train`` / ``test``: two "\\n\\nHuman: ... \\n\\nAssistant: ..." transcripts that share every
    turn but the last assistant reply. ``template="raw"`` (the default here) keeps the transcript format;
    ``template="chat"`` renders the parsed turns with the tokenizer's chat template instead."""

    def __init__(self, path: str = "Anthropic/hh-rlhf", val_split: str | None = "test", template: str = "raw",
                 **kwargs: Any):
        super().__init__(path=path, val_split=val_split, template=template, **kwargs)


def chat_pair(tokenizer: Any, prompt: Messages, reply: Messages) -> list[Segment]:
    """Chat-template segments of ``prompt + reply`` where only the reply's assistant turns train.

    ``chat_segments`` trains every assistant turn; the prompt's earlier assistant turns are history here, so only
    segments starting at or after the end of the rendered prompt (generation header included) keep their flag.
    """
    segments = chat_segments(tokenizer, prompt + reply)
    cut = len(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
    out, position, aligned = [], 0, False
    for text, train in segments:
        out.append((text, train and position >= cut))
        position += len(text)
        aligned |= position == cut
    if not aligned:  # chat_segments cuts at every turn and header, so the prompt's end is always a boundary
        raise ValueError("chat template: the rendered prompt does not end on a segment boundary")
    return out


def render_pair(tokenizer: Any, parts: PairParts, template: str) -> Pair | str:
    """``(chosen segments, rejected segments)`` of ``parts`` in ``template`` ("chat" or "raw"), sharing the prompt."""
    prompt, chosen, rejected = parts
    eos = tokenizer.eos_token
    if template == "raw" and isinstance(prompt, str):
        return [(prompt, False), (chosen + eos, True)], [(prompt, False), (rejected + eos, True)]
    if isinstance(prompt, str):  # a flat pair in the chat template: one user turn, one assistant turn
        prompt = [{"role": "user", "content": prompt}]
        chosen, rejected = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
    if template == "chat":
        return chat_pair(tokenizer, prompt, chosen), chat_pair(tokenizer, prompt, rejected)
    if any(m["role"] not in MARKERS for m in prompt + chosen + rejected):
        return "malformed_message"  # a transcript has Human and Assistant turns only
    head = (raw_hh_prompt(prompt), False)
    return [head, (" " + raw_reply(chosen) + eos, True)], [head, (" " + raw_reply(rejected) + eos, True)]


def raw_reply(reply: Messages) -> str:
    """The reply's first assistant turn, and any later turns in transcript form."""
    return reply[0]["content"] + "".join(f"\n\n{MARKERS[m['role']]}: {m['content']}" for m in reply[1:])
