"""The generated suite is deterministic, split-disjoint and checkable."""

import pytest

from src.toyworld.tasks import answer_is_correct, extract_answer, make_corpus, make_preferences, make_problems


def test_deterministic_in_seed_and_disjoint_splits():
    assert make_problems(50, "train", seed=3) == make_problems(50, "train", seed=3)
    assert make_problems(50, "train", seed=3) != make_problems(50, "train", seed=4)
    train = {p.prompt for p in make_problems(2000, "train", seed=0)}
    test = {p.prompt for p in make_problems(200, "test", seed=0)}
    assert not train & test


def test_every_phrasing_is_correct_and_distinct():
    for problem in make_problems(200, "train", seed=1):
        assert len(set(problem.responses)) == 3
        assert all(answer_is_correct(r, problem.answer) for r in problem.responses)


def test_answer_extraction():
    assert extract_answer("2 + 2 = 4. The answer is 4.") == "4"
    assert extract_answer("The answer is 3. Wait. The answer is 5.") == "5"
    assert extract_answer("no final sentence") is None
    assert not answer_is_correct("The answer is 41.", "4")


def test_preferences_prefer_the_correct_well_formed_answer():
    pairs = make_preferences(100, "train", seed=0)
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    assert all(extract_answer(p["chosen"]) is not None for p in pairs)
    problems = {p.prompt: p for p in make_problems(100, "train", seed=0)}
    for pair in pairs:
        assert answer_is_correct(pair["chosen"], problems[pair["prompt"]].answer)
        assert not answer_is_correct(pair["rejected"], problems[pair["prompt"]].answer)


def test_corpus_and_errors():
    assert len(make_corpus(10)) == 10
    with pytest.raises(ValueError, match="split"):
        make_problems(1, "dev")
    with pytest.raises(ValueError, match="unknown toy-world kinds"):
        make_problems(1, kinds=("poetry",))
    with pytest.raises(ValueError, match="distinct"):
        make_problems(10_000, "test", kinds=("reverse",))
