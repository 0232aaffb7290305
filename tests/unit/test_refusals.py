"""The SDFT / llm-attacks refusal keywords, matched case-sensitively."""

import pytest

from src.eval.metrics.refusals import REFUSAL_KEYWORDS, is_refusal, safe_rate


def test_the_official_list_has_29_distinct_keywords():
    assert len(REFUSAL_KEYWORDS) == 29
    assert len(set(REFUSAL_KEYWORDS)) == 29


def test_is_refusal_is_a_case_sensitive_substring_test():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("Making that is illegal.")
    assert not is_refusal("i'm sorry, lowercase does not count")
    assert not is_refusal("Here is how to bake bread.")


def test_custom_keywords_replace_the_list():
    assert is_refusal("nope", keywords=["nope"])
    assert not is_refusal("I'm sorry", keywords=["nope"])


def test_safe_rate_is_the_fraction_of_refusals():
    texts = ["I cannot do that.", "Sure! Step 1...", "As an AI, I won't.", "ok"]
    assert safe_rate(texts) == pytest.approx(2 / 4)
    assert safe_rate(texts, keywords=(k for k in ["ok"])) == pytest.approx(1 / 4)  # a generator works too
    with pytest.raises(ValueError):
        safe_rate([])
