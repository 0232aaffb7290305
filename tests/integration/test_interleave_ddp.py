"""With two DDP processes (CPU, gloo) both ranks make the same choices, on disjoint shards of each stream."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from src.interleave.schedules import Alright
from tests.helpers import ROOT

WORKER = ROOT / "tests" / "integration" / "interleave_ddp_worker.py"


def draws(seed: int, steps: int = 6) -> list[str]:
    """What one rank alone, seeded with ``seed``, would choose."""
    schedule = Alright(lam=0.5, seed=seed)
    return [next(iter(schedule.choose(t, steps))) for t in range(steps)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["alright", "maxright"])
def test_both_ranks_make_the_same_choices(tmp_path, kind):
    out = subprocess.run([sys.executable, str(WORKER), str(tmp_path), kind], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["choices"] == ranks[1]["choices"]
    assert len(ranks[0]["choices"]) == 6
    if kind == "alright":  # rank 1 was seeded differently: only the broadcast keeps it in step
        alone = [draws(seed) for seed in (10, 11)]
        assert alone[0] != alone[1]
        assert [c for [c] in ranks[0]["choices"]] == alone[0]  # rank 0's draws
    assert ranks[0]["consumed"] == ranks[1]["consumed"]
    assert not set(ranks[0]["first_sft_examples"]) & set(ranks[1]["first_sft_examples"])  # disjoint shards
