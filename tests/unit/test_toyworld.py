"""The generated suite is deterministic, split-disjoint and checkable."""

import ast
import hashlib
import json
from pathlib import Path

import pytest

import src.toyworld
from src.datamodules import toy_tokenizer
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


def test_toyworld_imports_nothing_from_the_datamodules():
    """The DataModules build on the toy world, never the reverse (no import cycle)."""
    for path in Path(src.toyworld.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        modules += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [m for m in modules if m.startswith("src.") and not m.startswith("src.toyworld")], path.name


def test_toy_tokenizer_training_text_is_pinned_to_its_version():
    # The tokenizer is cached on disk under its VERSION: a change to its training text must bump VERSION and this hash.
    text = json.dumps(toy_tokenizer._training_text())
    assert (toy_tokenizer.VERSION, hashlib.sha1(text.encode()).hexdigest()) == (
        "v1", "5e9858a4ff8ef911d7e8d7311ef2f972f123fb15")
