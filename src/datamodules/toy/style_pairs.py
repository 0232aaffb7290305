"""Toy-world *style* preference pairs: the most concise correct answer over a wordier correct one.

The correctness pairs of ``ToyWorldPreferenceDataModule`` (a right answer over a wrong or unformatted one) are
learned by SFT on the toy tasks as a side effect: SFT alone lowers their DPO loss as much as DPO does, so they show
no SFT/DPO trade-off. A style preference does conflict with SFT: the SFT data use every phrasing of an answer
evenly, so SFT keeps them all likely (and, against a reference that favours short sequences, *raises* the DPO loss),
while DPO moves probability onto the shortest phrasing, which costs SFT likelihood on the others. Both sides of
every pair are correct and formatted.
"""

from __future__ import annotations

import random

from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.toyworld.tasks import make_problems


def make_style_preferences(n: int, split: str = "train", seed: int = 0,
                           kinds: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """``{prompt, chosen, rejected}``: chosen is the problem's shortest phrasing, rejected one of the longer ones."""
    rng = random.Random(f"{seed}-{split}-style")
    pairs = []
    for problem in make_problems(n, split, seed, kinds):
        ranked = sorted(problem.responses, key=len)
        pairs.append({"prompt": problem.prompt, "chosen": ranked[0], "rejected": rng.choice(ranked[1:])})
    return pairs


class ToyWorldStylePreferenceDataModule(ToyWorldPreferenceDataModule):
    """``ToyWorldPreferenceDataModule`` with style pairs (:func:`make_style_preferences`) instead of correctness."""

    def load_split(self, split: str) -> list[dict[str, str]]:
        return make_style_preferences(*self.split_size(split), self.seed, self.kinds)
