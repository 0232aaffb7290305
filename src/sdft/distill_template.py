"""Distillation templates: the seed model sees the instruction *and* the gold response, and writes its own answer.

SDFT (sail-sg/sdft ``main.py``) registers three: ``alpaca_distill_refer`` and ``alpaca_distill_using`` (Alpaca
layout with a "### Reference Answer:" block) and ``gsm8k_distill`` (a chat turn whose assistant reply is
prefilled with "Great! Let's think step by step. "). ``conf/distill/template/`` holds our versions; the system
sentences are ours, with the same meaning. Two official quirks are not copied: the Alpaca system sentence is
separated from "### Instruction:" by a blank line (the official one is glued to it), and a chat template puts the
system turn where the tokenizer's template puts it (the official Llama-2 one has it before the BOS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DistillTemplate:
    """``user`` is formatted with ``{instruction}``, ``{input}`` (the row's extra input, "" if none) and
    ``{reference}`` (the gold response). ``chat=True`` renders ``system`` + ``user`` with the tokenizer's chat
    template and the generation prompt; otherwise the text is ``system`` + blank line + ``user``. ``prefill`` starts
    the response; it is part of the prompt, never of the stored response. A ``user`` without ``{input}`` gets a
    non-empty input on a new line after the instruction, as LLaMA-Factory's Alpaca reader (SDFT's) builds the query."""

    user: str
    system: str = ""
    prefill: str = ""
    chat: bool = False

    def render(self, tokenizer: Any, instruction: str, reference: str, input: str = "") -> str:
        if input.strip() and "{input}" not in self.user:
            instruction = f"{instruction}\n{input}"
        text = self.user.format(instruction=instruction, input=input, reference=reference)
        if not self.chat:
            return (f"{self.system}\n\n{text}" if self.system else text) + self.prefill
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("distill.template.chat=true but the tokenizer has no chat template")
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + self.prefill
