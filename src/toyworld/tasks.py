"""Generated instruction tasks with checkable answers, preference pairs, and a plain-text corpus.

Every problem ends its answer with "The answer is X." (the GSM8K convention) and has several valid phrasings, so
accuracy is checkable and output diversity is measurable. Splits are disjoint by construction: a problem belongs to
the held-out split iff a stable hash of its prompt falls in the held-out bucket, whatever the seed.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

NAMES = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Leo", "Max", "Ned", "Ola", "Pam"]
ITEMS = ["apple", "book", "coin", "cup", "egg", "hat", "key", "pen", "ring", "shell", "stone", "toy"]
WORDS = [
    "cat", "dog", "sun", "moon", "tree", "fish", "bird", "rain", "star", "lamp", "door", "milk", "rose", "ship",
    "frog", "wolf", "snow", "leaf", "king", "road", "bell", "cake", "gold", "hill", "lake", "nest", "rock", "seed",
]
SPLITS = ("train", "test")
HELD_OUT_BUCKETS = 10  # 1 in 10 prompts is held out


@dataclass(frozen=True)
class Problem:
    """One instruction task: a prompt, its gold final answer, and every valid phrasing of a full response."""

    kind: str
    prompt: str
    answer: str
    responses: tuple[str, ...]


def _split_of(prompt: str) -> str:
    bucket = int(hashlib.sha1(prompt.encode()).hexdigest(), 16) % HELD_OUT_BUCKETS
    return "test" if bucket == 0 else "train"


def _add(rng: random.Random) -> Problem:
    name, item, a, b = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(0, 20), rng.randint(0, 20)
    c = a + b
    prompt = f"{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have now?"
    return Problem("add", prompt, str(c), (
        f"{a} + {b} = {c}. The answer is {c}.",
        f"{name} starts with {a} and gets {b} more, so {a} + {b} = {c}. The answer is {c}.",
        f"Adding {b} to {a} gives {c}. The answer is {c}.",
    ))


def _sub(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(1, 30)
    b = rng.randint(0, a)
    c = a - b
    prompt = f"{name} has {a} {item}s and gives away {b}. How many {item}s are left?"
    return Problem("sub", prompt, str(c), (
        f"{a} - {b} = {c}. The answer is {c}.",
        f"{name} had {a} and gave away {b}, so {a} - {b} = {c} are left. The answer is {c}.",
        f"Taking {b} from {a} leaves {c}. The answer is {c}.",
    ))


def _mul(rng: random.Random) -> Problem:
    item, a, b = rng.choice(ITEMS), rng.randint(1, 9), rng.randint(1, 9)
    c = a * b
    prompt = f"There are {a} boxes with {b} {item}s in each box. How many {item}s are there in all?"
    return Problem("mul", prompt, str(c), (
        f"{a} * {b} = {c}. The answer is {c}.",
        f"{a} boxes of {b} make {a} * {b} = {c}. The answer is {c}.",
        f"Multiplying {a} by {b} gives {c}. The answer is {c}.",
    ))


def _reverse(rng: random.Random) -> Problem:
    word = rng.choice(WORDS)
    rev = word[::-1]
    prompt = f"Reverse the letters of the word '{word}'."
    return Problem("reverse", prompt, rev, (
        f"Reversed, '{word}' is '{rev}'. The answer is {rev}.",
        f"Reading '{word}' backwards gives '{rev}'. The answer is {rev}.",
        f"The letters of '{word}' in reverse order spell '{rev}'. The answer is {rev}.",
    ))


def _length(rng: random.Random) -> Problem:
    word = rng.choice(WORDS) + rng.choice(["", "s", "er", "ing"])
    n = len(word)
    prompt = f"How many letters are in the word '{word}'?"
    return Problem("length", prompt, str(n), (
        f"'{word}' has {n} letters. The answer is {n}.",
        f"Counting the letters of '{word}' gives {n}. The answer is {n}.",
        f"The word '{word}' is {n} letters long. The answer is {n}.",
    ))


GENERATORS = {"add": _add, "sub": _sub, "mul": _mul, "reverse": _reverse, "length": _length}


def make_problems(n: int, split: str = "train", seed: int = 0, kinds: tuple[str, ...] | None = None) -> list[Problem]:
    """``n`` distinct problems of ``split`` ("train" or "test"), deterministic in ``seed``.

    The problem space is finite, so ``n`` larger than what a split holds raises instead of looping forever.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kinds = tuple(kinds or GENERATORS)
    unknown = set(kinds) - set(GENERATORS)
    if unknown:
        raise ValueError(f"unknown toy-world kinds {sorted(unknown)}; choose from {sorted(GENERATORS)}")
    rng = random.Random(f"{seed}-{split}")
    seen: dict[str, Problem] = {}
    misses = 0
    while len(seen) < n and misses < 5000:  # 5000 draws in a row with nothing new: the space is exhausted
        problem = GENERATORS[rng.choice(kinds)](rng)
        if problem.prompt not in seen and _split_of(problem.prompt) == split:
            seen[problem.prompt] = problem
            misses = 0
        else:
            misses += 1
    if len(seen) < n:
        raise ValueError(f"toy world holds only {len(seen)} distinct {split} problems of kinds {kinds}, asked for {n}")
    return list(seen.values())


def make_preferences(
    n: int, split: str = "train", seed: int = 0, kinds: tuple[str, ...] | None = None
) -> list[dict[str, str]]:
    """Preference pairs ``{prompt, chosen, rejected}``: a correct answer over a wrong or badly formatted one."""
    rng = random.Random(f"{seed}-{split}-pref")
    pairs = []
    for problem in make_problems(n, split, seed, kinds):
        chosen = rng.choice(problem.responses)
        if rng.random() < 0.5:  # wrong final answer, same phrasing
            wrong = _perturb(problem.answer, rng)
            rejected = re.sub(r"The answer is .*\.$", f"The answer is {wrong}.", chosen)
        else:  # right number, bad format: the checkable sentence is missing
            rejected = re.sub(r"\s*The answer is .*\.$", "", chosen) or problem.answer
        pairs.append({"prompt": problem.prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def _perturb(answer: str, rng: random.Random) -> str:
    if answer.isdigit():
        return str(int(answer) + rng.choice([-2, -1, 1, 2, 10]) if int(answer) > 2 else int(answer) + rng.randint(1, 3))
    return answer[1:] + answer[0] if len(answer) > 1 else answer + answer


def make_corpus(n_docs: int, split: str = "train", seed: int = 0) -> list[str]:
    """Short plain-text documents about the toy world, for language-model fine-tuning."""
    docs = []
    for problem in make_problems(n_docs, split, seed, kinds=("add", "sub", "mul", "reverse", "length")):
        docs.append(f"{problem.prompt} {problem.responses[1]}")
    return docs


_ANSWER_RE = re.compile(r"\s*(\S+?)\.?(?=\s|$)")


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the word after the last "The answer is", without its final period."""
    if "The answer is" not in text:
        return None
    found = _ANSWER_RE.match(text.rsplit("The answer is", 1)[1])
    return found.group(1) if found else None


def answer_is_correct(text: str, answer: str) -> bool:
    return extract_answer(text) == answer
