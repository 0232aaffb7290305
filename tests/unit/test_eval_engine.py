"""The generation engine: seeded sampling, batched greedy == one prompt at a time (left padding and the attention mask
are right), results keyed by id, and ``truncated`` / ``num_tokens`` / ``stop`` as ``Sample`` documents them."""

from __future__ import annotations

import pytest
import torch

from src.eval.engine.hf_engine import Sampling, generate_samples
from src.modules.backbones import tiny_llama

QUESTIONS = [  # different lengths, so a batch of them is padded
    "Hi",
    "What is 3 + 4?",
    "Reverse the letters of the word 'dog'.",
    "Eve has 11 books and gets 2 more. How many books does Eve have now?",
    "Count the vowels in banana.",
    "x",
    "The cat and the dog met at the lake and talked about the moon for a long time.",
]


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2)


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[tuple[str, str]]:
    render = lambda q: tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                     add_generation_prompt=True)
    return [(f"p{i}", render(q)) for i, q in enumerate(QUESTIONS)]


def texts(results) -> dict:
    return {pid: [s.text for s in samples] for pid, samples in results.items()}


def force_eos_at(model, eos_id: int, step: int, rows: list[int]):
    """A hook that makes EOS the argmax of batch ``rows`` at generated token ``step`` (0 = the first new token).

    ``generate`` calls the LM head once per new token (the prompt's prefill gives token 0), so counting calls counts
    tokens. Returns the handle; ``.remove()`` it."""
    calls = [0]

    def hook(module, inputs, logits):  # logits: (B, T, V)
        if calls[0] == step:
            logits = logits.clone()
            logits[rows, -1, eos_id] = logits[rows, -1].max(-1).values + 100.0
        calls[0] += 1
        return logits

    return model.lm_head.register_forward_hook(hook)


def test_same_seed_same_samples_and_another_seed_differs(model, tokenizer, prompts):
    sampling = Sampling(n=4, temperature=1.0, max_new_tokens=6, seed=3)
    first = generate_samples(model, tokenizer, prompts[:3], sampling)
    torch.manual_seed(12345)  # the caller's RNG state must not matter ...
    rng = torch.get_rng_state()
    again = generate_samples(model, tokenizer, prompts[:3], sampling)
    assert torch.equal(torch.get_rng_state(), rng)  # ... and is left as it was
    other = generate_samples(model, tokenizer, prompts[:3], Sampling(n=4, temperature=1.0, max_new_tokens=6, seed=4))
    assert texts(first) == texts(again)
    assert texts(first) != texts(other)
    assert all(len(set(group)) > 1 for group in texts(first).values())  # n samples, not n copies
    assert [s.index for s in first["p0"]] == [0, 1, 2, 3]


def test_batched_greedy_equals_one_prompt_at_a_time(model, tokenizer, prompts):
    """7 prompts in batches of 4 (left-padded to the longest) give token-for-token the texts of unpadded single runs."""
    sampling = Sampling(max_new_tokens=10, batch_size=4)
    single = {pid: generate_samples(model, tokenizer, [(pid, text)], sampling)[pid][0].text for pid, text in prompts}
    batched = generate_samples(model, tokenizer, prompts, sampling)
    assert {pid: samples[0].text for pid, samples in batched.items()} == single
    assert len(set(single.values())) > 3  # the outputs depend on the prompt, so a padding leak would show


def test_results_are_keyed_by_id_whatever_the_order(model, tokenizer, prompts):
    sampling = Sampling(max_new_tokens=5, batch_size=3)
    forward = generate_samples(model, tokenizer, prompts, sampling)
    backward = generate_samples(model, tokenizer, prompts[::-1], sampling)
    assert texts(forward) == texts(backward)
    assert list(backward) == [pid for pid, _ in prompts[::-1]]  # the caller's order
    assert all(s.prompt_id == pid for pid, samples in backward.items() for s in samples)
    with pytest.raises(ValueError, match="prompt ids"):
        generate_samples(model, tokenizer, [prompts[0], prompts[0]], sampling)


def test_truncated_when_max_new_tokens_is_hit_without_eos(model, tokenizer, prompts):
    results = generate_samples(model, tokenizer, prompts, Sampling(max_new_tokens=3))
    for samples in results.values():
        assert samples[0].truncated and samples[0].num_tokens == 3


def test_eos_at_the_last_allowed_token_is_not_truncated(model, tokenizer, prompts):
    handle = force_eos_at(model, tokenizer.eos_token_id, step=0, rows=[0])
    try:
        [sample] = generate_samples(model, tokenizer, prompts[:1], Sampling(max_new_tokens=1))["p0"]
    finally:
        handle.remove()
    assert (sample.text, sample.num_tokens, sample.truncated) == ("", 1, False)


def test_eos_mid_batch_ends_one_sample_and_counts_its_tokens(model, tokenizer, prompts):
    """EOS at token 2 of the batch's first row (the longest prompt): that sample has 3 tokens (EOS included) and is
    the first two tokens of its free-running text; the others run to max_new_tokens."""
    sampling = Sampling(max_new_tokens=6, batch_size=8)
    free = generate_samples(model, tokenizer, prompts, sampling)
    longest = max(prompts, key=lambda p: len(tokenizer(p[1])["input_ids"]))[0]
    handle = force_eos_at(model, tokenizer.eos_token_id, step=2, rows=[0])
    try:
        ended = generate_samples(model, tokenizer, prompts, sampling)
    finally:
        handle.remove()
    sample = ended[longest][0]
    assert (sample.num_tokens, sample.truncated) == (3, False)
    two_tokens = generate_samples(model, tokenizer, prompts, Sampling(max_new_tokens=2, batch_size=8))[longest][0]
    assert sample.text == two_tokens.text
    others = [s[0] for pid, s in ended.items() if pid != longest]
    assert all(s.truncated and s.num_tokens == 6 for s in others)
    assert {pid: s[0].text for pid, s in ended.items() if pid != longest} == {
        pid: s[0].text for pid, s in free.items() if pid != longest}


def test_stop_string_cuts_the_text_before_it(model, tokenizer, prompts):
    sampling = Sampling(max_new_tokens=12, batch_size=8)
    free = generate_samples(model, tokenizer, prompts, sampling)["p3"][0]
    ids = tokenizer(free.text, add_special_tokens=False)["input_ids"]
    stop = tokenizer.decode(ids[4:6])  # two tokens from the middle of the free-running text
    assert stop.strip() and free.text.index(stop) > 0
    stopped = generate_samples(model, tokenizer, prompts, Sampling(max_new_tokens=12, batch_size=8, stop=[stop]))
    sample = stopped["p3"][0]
    assert sample.text == free.text[:free.text.index(stop)]
    assert not sample.truncated
    # num_tokens counts up to the token that completed the stop string (the batch pads the sample after it)
    upto = lambda k: generate_samples(model, tokenizer, prompts[3:4], Sampling(max_new_tokens=k))["p3"][0].text
    assert stop in upto(sample.num_tokens) and stop not in upto(sample.num_tokens - 1)
    assert all(stop not in samples[0].text for samples in stopped.values())  # each is cut at its first stop


def test_greedy_with_n_above_one_names_the_setting():
    with pytest.raises(ValueError, match=r"generation\.n"):
        Sampling(n=2, temperature=0.0)
    with pytest.raises(ValueError, match=r"generation\.temperature"):
        Sampling(temperature=-1.0)
