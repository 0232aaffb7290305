"""SDFT's OpenFunctions normaliser and call check on hand-made calls."""

import pytest

from src.eval.metrics.tool_calls import call_in_response, gold_call, normalise_call


def test_normalise_collapses_whitespace_then_quotes_then_comma_spaces():
    assert normalise_call("  get_weather( city = 'Paris',  unit='C')\n") == 'get_weather( city = "Paris",unit="C")'
    # The newline after the comma becomes a space first, so ", " then removes it.
    assert normalise_call("f(a=1,\n    b=2)") == "f(a=1,b=2)"


def test_gold_call_validates_the_shape():
    assert gold_call("math.sqrt(x = 4)") == "math.sqrt(x = 4)"
    with pytest.raises(ValueError, match="not a call"):
        gold_call("not a call")
    with pytest.raises(ValueError, match="f\\(x\\) then prose"):
        gold_call("f(x) then prose")


def test_call_in_response_allows_prose_and_quote_style():
    assert call_in_response("get_weather(city='Paris')", 'Call: get_weather(city="Paris")')
    assert call_in_response("f(a=1, b=2)", "Sure! Here it is:\n  f(a=1,  b=2)\nHope that helps.")


def test_call_in_response_rejects_reordered_args_and_partial_names():
    assert not call_in_response("f(a=1, b=2)", "f(b=2, a=1)")
    assert not call_in_response("get(x=1)", "forget(x=1)")  # the word boundary before the name
