"""Answer extraction: SDFT's last-number rule, math-verify, and the toy-world rule, on hand-made texts."""

import pytest

from src.eval.metrics.answers import (
    EXTRACTORS,
    SDFT_INVALID,
    answers_match,
    extract,
    last_number,
    math_verify_answer,
    math_verify_equal,
    sdft_integer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", 1234),
        ("3.5", 3.5),
        ("-2", -2),
        ("12 000", 12000),
        ("3 4", 34),  # whitespace is a thousands separator too: the official quirk
        ("no number", None),
        ("The answer is 18.", 18),
        ("costs $1,234,567 total", 1234567),
        ("3.5 apples then 4", 4),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_sdft_integer_truncates_zero_fractions_and_flags_others():
    assert sdft_integer("3.0") == 3
    assert sdft_integer("x = -12.00") == -12
    assert sdft_integer("3.5") == SDFT_INVALID == -999999999
    assert sdft_integer("no number") is None
    assert sdft_integer("12345678901234567890") == 12345678901234567890  # exact, not through a float


def test_last_number_match_compares_official_integers():
    assert answers_match("Natalia sold 48 + 24 = 72 clips.\n#### 72", "So she sold 72.0 clips.", "last_number")
    assert not answers_match("#### 72", "She sold 27 clips.", "last_number")
    assert not answers_match("no number", "none here", "last_number")  # the official code would say True
    # Both non-integers map to the sentinel and so match, as in the official check_math.
    assert answers_match("3.5", "2.5", "last_number")
    assert extract("The answer is 3.0", "last_number") == "3"
    assert extract("The answer is 3.5", "last_number") == "-999999999"
    assert extract("nothing", "last_number") is None


def test_math_verify_reads_latex_and_decimals_as_equal():
    # parse() returns [sympy value, matched string]; the first element is what we keep.
    assert str(math_verify_answer("\\boxed{\\frac{1}{2}}")) == "1/2"
    assert str(math_verify_answer("0.5")) == "0.500000000000000"
    assert math_verify_answer("no number") is None
    assert math_verify_equal("\\boxed{\\frac{1}{2}}", "0.5")
    assert math_verify_equal("0.5", "\\boxed{\\frac{1}{2}}")
    assert not math_verify_equal("\\boxed{\\frac{1}{2}}", "0.25")
    assert not math_verify_equal("\\boxed{2}", "no answer")
    assert answers_match("$1,234$", "The total is 1234.", "math_verify")
    # Equal values can still be different voting keys.
    assert extract("\\boxed{\\frac{1}{2}}", "math_verify") == "1/2"
    assert extract("0.5", "math_verify") == "0.500000000000000"


def test_toyworld_gold_may_be_bare_or_a_full_response():
    response = "40 + 2 = 42. The answer is 42."
    assert answers_match("42", response, "toyworld")
    assert answers_match("Adding 2 to 40 gives 42. The answer is 42.", response, "toyworld")
    assert not answers_match("41", response, "toyworld")
    assert not answers_match("42", "It is 42.", "toyworld")  # no "The answer is" in the response
    assert extract("Reversed, 'cat' is 'tac'. The answer is tac.", "toyworld") == "tac"


def test_unknown_extractor_lists_the_valid_names():
    assert set(EXTRACTORS) == {"last_number", "math_verify", "toyworld"}
    with pytest.raises(ValueError, match="last_number.*math_verify.*toyworld"):
        answers_match("1", "1", "regex")
    with pytest.raises(ValueError, match="valid names"):
        extract("1", "regex")
