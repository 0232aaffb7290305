"""Generation encodes prompts exactly as training does: one BOS, whether or not the rendered prompt carries it."""

from __future__ import annotations

import pytest

from src.datamodules.templates import alpaca_prompt
from src.eval.engine.generation import generate
from src.modules.backbones import tiny_llama
from tests.helpers import llama_style_tokenizer


@pytest.mark.parametrize("render", ["alpaca", "chat"])
def test_prompt_ids_start_with_one_bos(tokenizer, render):
    llama = llama_style_tokenizer(tokenizer)
    model = tiny_llama(llama, hidden_size=16, num_layers=1, num_heads=2)
    seen = []
    original = model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"])
        return original(**kwargs)

    model.generate = spy
    if render == "alpaca":
        prompt = alpaca_prompt("Add 2 and 3.")
    else:
        prompt = llama.apply_chat_template([{"role": "user", "content": "Add 2 and 3."}], tokenize=False,
                                           add_generation_prompt=True)
    generate(model, llama, [prompt], max_new_tokens=2)
    ids = seen[0][0].tolist()
    assert ids[0] == llama.bos_token_id and ids[1] != llama.bos_token_id
