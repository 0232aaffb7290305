"""How an evaluation prompt is rendered: the tokenizer's chat template, the Alpaca template, an Anthropic HH
transcript, or the raw text."""

from __future__ import annotations

from typing import Any

from src.datamodules.hh import raw_hh_prompt
from src.datamodules.templates import alpaca_prompt
from src.utils.checks import require_choice

TEMPLATES = ("chat", "alpaca", "raw", "hh")


def render_prompt(tokenizer: Any, instruction: str, template: str = "chat", system: str | None = None,
                  input: str = "", prefill: str = "") -> str:
    """The text a model continues. ``chat``: one user turn (after ``system``, if given) and the generation prompt;
    ``alpaca``: Stanford Alpaca's prompt (SDFT evaluates tool use and safety with it); ``raw``: the instruction as
    is; ``hh``: one "\\n\\nHuman: ...\\n\\nAssistant:" turn, as ``data=hh`` trains with its raw template.
    ``prefill`` starts the response (it is part of the prompt, not of the scored response)."""
    require_choice("eval.template", template, TEMPLATES)
    if template == "alpaca":
        return alpaca_prompt(instruction, input) + prefill
    text = f"{instruction}\n\n{input}" if input and input.strip() else instruction
    if template == "raw":
        return text + prefill
    if template == "hh":
        return raw_hh_prompt([{"role": "user", "content": text}]) + prefill
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("eval.template=chat but the tokenizer has no chat template; use eval.template=alpaca or raw")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill
