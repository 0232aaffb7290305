"""Best-of-n by the policy's mean log-prob scores the response as training encodes it, with its end token."""

from __future__ import annotations

import pytest
import torch

from src.eval.engine.hf_engine import Sampling, generate_samples
from src.eval.metrics.scoring import policy_mean_logprobs
from src.modules.backbones import tiny_llama


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2).eval()


def manual_mean(model, tokenizer, prompt: str, response_ids: list[int]) -> float:
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)  # (T, V)
    start = len(prompt_ids)
    return sum(logps[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1])) / len(response_ids)


def test_the_end_token_is_scored_with_the_response(model, tokenizer):
    prompt, response = "Add 2 and 3.", " 2 + 3 = 5."
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    plain, ended = policy_mean_logprobs(model, tokenizer, [prompt, prompt], [response, response],
                                        end_tokens=[None, eos])
    assert plain == pytest.approx(manual_mean(model, tokenizer, prompt, r_ids), rel=1e-5)
    assert ended == pytest.approx(manual_mean(model, tokenizer, prompt, r_ids + [eos]), rel=1e-5)
    assert ended != pytest.approx(plain, rel=1e-6)


def test_a_sample_records_the_end_token_that_ended_it(model, tokenizer):
    eos = tokenizer.eos_token_id
    hook = model.lm_head.register_forward_hook(lambda m, i, out: out.index_fill(-1, torch.tensor([eos]), 1e4))
    try:
        sample = generate_samples(model, tokenizer, [("p", "Hi")], Sampling(max_new_tokens=4))["p"][0]
    finally:
        hook.remove()
    assert sample.end_token == eos and not sample.truncated
    unended = generate_samples(model, tokenizer, [("p", "Hi")], Sampling(max_new_tokens=2))["p"][0]
    assert unended.end_token is None
