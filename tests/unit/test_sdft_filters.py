"""SDFT's filters and distillation templates on hand-made cases.

The filters follow ``sail-sg/sdft`` ``eval/gen_distilled_data.py`` (``verify``), ``eval/utils.py``
(``find_last_integer``), ``eval/eval_openfunction.py`` and ``eval/eval_magicoder.py``; where ours differ on purpose
(no-number answers, the truncation and empty filters) the test says so. Templates are the shipped YAML files,
instantiated as Hydra does, rendered against golden strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from src.eval.engine.hf_engine import Sample
from src.modules.backbones import tiny_llama
from src.sdft.filters import (
    BAN_PHRASES,
    FILTERS,
    BanPhrases,
    Candidate,
    CodeBlock,
    Empty,
    FunctionCall,
    MathAnswer,
    Truncated,
)
from src.sdft.stage import distill
from tests.helpers import ROOT

TEMPLATES = ROOT / "conf" / "distill" / "template"


def rejects(f, response: str, reference: str = "", truncated: bool = False) -> bool:
    return f.reject(Candidate("0", reference, response, truncated))


def test_registry_names_each_filter():
    assert FILTERS == {"ban_phrases": BanPhrases, "math_answer": MathAnswer, "function_call": FunctionCall,
                       "code_block": CodeBlock, "truncated": Truncated, "empty": Empty}
    assert len(BAN_PHRASES) == 5  # SDFT's verify(): five phrases, plus the "Your turn" prefix rule


@pytest.mark.parametrize("phrase", ["Reference Answer", "YOUR RESPONSE", "My Response", "your OWN response",
                                    "NOW IT'S YOUR TURN", "reference answer"])
def test_each_ban_phrase_rejects_in_any_case(phrase):
    assert rejects(BanPhrases(), f"Sure. As the {phrase} says, 12 eggs.")
    assert rejects(BanPhrases(), phrase)


def test_ban_phrases_keep_an_ordinary_answer():
    assert not rejects(BanPhrases(), "She has 12 eggs left, so the answer is 12.")
    assert not rejects(BanPhrases(), "a response of your own")  # the template's own words, but not a banned phrase


def test_your_turn_prefix_rejects_only_at_the_start_and_case_sensitively():
    assert rejects(BanPhrases(), "Your turn: what is 3 + 4?")
    assert rejects(BanPhrases(), "  \nYour turn to solve it.")  # the official code strips the prediction first
    assert not rejects(BanPhrases(), "I solved it. Your turn to check it.")
    # Official: predict.startswith("Your turn"), case-sensitive, unlike the five phrases.
    assert not rejects(BanPhrases(), "your turn to solve it.")
    assert not rejects(BanPhrases(), "YOUR TURN to solve it.")


def test_ban_phrases_are_configurable():
    custom = BanPhrases(phrases=("As An AI",), start_phrases=("Sure",))
    assert rejects(custom, "as an ai, I cannot")
    assert rejects(custom, "Sure, 12.")
    assert not rejects(custom, "Reference answer: 12")  # the defaults are replaced, not extended


@pytest.mark.parametrize("reference, response, kept", [
    ("The answer is 1,234.", "So the total is 1234.", True),  # commas are thousands separators on either side
    ("The answer is 1234.", "So the total is 1,234", True),
    ("#### 12 000", "12000 in all", True),  # whitespace inside a number separates thousands too (official)
    ("The answer is 3.", "The answer is 3.0", True),  # a zero fraction is the integer
    ("The answer is 3.", "The answer is 3.5", False),  # a non-zero fraction is the invalid sentinel
    ("The answer is 3.5", "The answer is 3", False),
    ("The answer is 18.", "9 + 9 = 18, not 17.", False),  # the *last* number counts
    ("The answer is 18.", "She has 17 eggs, then 18.", True),
    ("The answer is -4.", "It drops by 4, so -4", True),
    ("The answer is 18.", "I do not know.", False),  # no number in the response
    ("No number here.", "No number either.", False),  # the official code accepts this pair (both sentinels)
])
def test_math_answer_compares_the_last_numbers(reference, response, kept):
    assert rejects(MathAnswer(), response, reference) is not kept


def test_math_answer_toy_extractor_reads_the_final_answer():
    gold = "Step 1: 8 times 9 is 72. The answer is 72."
    assert not rejects(MathAnswer("toyworld"), "8 times 9 is 72. The answer is 72.", gold)
    assert rejects(MathAnswer("toyworld"), "The answer is 71. 72", gold)


@pytest.mark.parametrize("response, kept", [
    ('Call get_weather(city="Paris", unit="C") now.', True),  # prose around the call is allowed
    ("get_weather(city='Paris',unit='C')", True),  # quotes and ", " are normalised
    ('get_weather( city="Paris",\n   unit="C")', False),  # spaces inside the parentheses are text
    ('get_weather(city="Paris",\n   unit="C")', True),  # a newline run after a comma becomes ", " then ","
    ('get_weather(unit="C", city="Paris")', False),  # argument order matters (official)
    ('forget_weather(city="Paris", unit="C")', False),  # a word boundary before the name
    ("I cannot call functions.", False),
])
def test_function_call_normalises_then_looks_for_the_gold_call(response, kept):
    assert rejects(FunctionCall(), response, "get_weather(city='Paris', unit='C')") is not kept


def test_function_call_raises_on_a_gold_that_is_not_a_call():
    with pytest.raises(ValueError, match="not a function call"):
        rejects(FunctionCall(), "f(x)", "The weather is nice.")


@pytest.mark.parametrize("response, kept", [
    ("Here is the code:\n```python\nprint(1)\n```", True),
    ("I have written it.\n```python\nx = 1\n```", True),
    ("  I implemented it:\n```python\nx = 1\n```", True),  # stripped first
    ("Here is the code:\n```\nprint(1)\n```", False),  # a fence without the language
    ("Sure! Here is the code:\n```python\nprint(1)\n```", False),  # not an allowed opening
    ("here is the code:\n```python\nprint(1)\n```", False),  # openings are case-sensitive
])
def test_code_block_needs_a_python_fence_and_an_allowed_opening(response, kept):
    assert rejects(CodeBlock(), response) is not kept


def test_truncated_and_empty():
    assert rejects(Truncated(), "a fine answer", truncated=True)
    assert not rejects(Truncated(), "a fine answer", truncated=False)
    for blank in ("", "   ", "\n\t \n"):
        assert rejects(Empty(), blank)
    assert not rejects(Empty(), " . ")


# Templates: the shipped YAML files, instantiated as Hydra does.

def load_template(name: str):
    return hydra.utils.instantiate(OmegaConf.load(TEMPLATES / f"{name}.yaml"))


def test_refer_and_using_templates_render_the_alpaca_layout(tokenizer):
    system = ("Below is an instruction that describes a task, followed by a reference answer. {} write a response of "
              "your own that appropriately completes the request.")
    body = "### Instruction:\nAdd 2 and 3.\n\n### Reference Answer:\n2 + 3 = 5.\n\n### Response:\n"
    for name, verb in (("refer", "Refer to the reference answer and"), ("using", "Using the reference answer as a "
                                                                                 "guide,")):
        prompt = load_template(name).render(tokenizer, "Add 2 and 3.", "2 + 3 = 5.")
        assert prompt == system.format(verb) + "\n\n" + body


def test_alpaca_input_joins_the_instruction_as_llama_factory_does(tokenizer):
    # LLaMA-Factory (SDFT's data path) puts "instruction\ninput" in the user slot; a row's input must not vanish.
    prompt = load_template("refer").render(tokenizer, "Add the numbers.", "5", input="2, 3")
    assert "### Instruction:\nAdd the numbers.\n2, 3\n\n### Reference Answer:\n5\n\n" in prompt
    assert "### Instruction:\nAdd the numbers.\n\n" in load_template("refer").render(tokenizer, "Add the numbers.", "5")


def test_gsm8k_template_is_a_chat_turn_with_the_prefill(tokenizer):
    prompt = load_template("gsm8k").render(tokenizer, "Q?", "Gold. The answer is 18.")
    system = ("You are an expert in mathematics. You are given a question together with a reference solution. Solve "
              'the question in your own words, step by step, and end with "The answer is N."')
    assert prompt == (f"<|system|>\n{system}<|end|>\n<|user|>\nQ?\n\nGold. The answer is 18.<|end|>\n"
                      "<|assistant|>\nGreat! Let's think step by step. ")


def test_chat_template_needs_a_tokenizer_chat_template(tokenizer):
    bare = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        load_template("gsm8k").render(bare, "Q?", "A")


def test_gsm8k_prefill_ends_the_prompt_and_never_reaches_the_stored_response(tmp_path, tokenizer, monkeypatch):
    rows = [{"question": f"Tom has {i} apples and buys {i}. How many?", "answer": f"{i} + {i}. The answer is {2 * i}."}
            for i in range(1, 4)]
    path = tmp_path / "gsm8k.json"
    path.write_text(json.dumps(rows))
    seen = {}

    def fake_generate(model, tokenizer, prompts, sampling):  # as the engine: only the new text comes back
        seen.update(prompts)
        return {pid: [Sample(pid, 0, f" He has {2 * (int(pid) + 1)} apples. The answer is {2 * (int(pid) + 1)}. ",
                             9, False)] for pid, _ in prompts}

    monkeypatch.setattr("src.sdft.stage.generate_samples", fake_generate)
    model = tiny_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2)
    target = distill(model, tokenizer, str(path), load_template("gsm8k"), str(tmp_path / "cache"),
                     filters={"math_answer": MathAnswer()})
    prefill = "Great! Let's think step by step. "
    assert sorted(seen) == ["0", "1", "2"]
    assert all(prompt.endswith("<|assistant|>\n" + prefill) for prompt in seen.values())
    out = json.loads(Path(target).read_text())
    assert [row["answer"] for row in out] == [f"He has {n} apples. The answer is {n}." for n in (2, 4, 6)]
    assert not any(prefill.strip() in row["answer"] for row in out)
