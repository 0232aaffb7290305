"""The interleaving schedules alone: frequencies, determinism, MAXRIGHT's choice rule, phases, state, config errors."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from src.interleave.optima import load_optima, write_optima
from src.interleave.schedules import Alright, MaxRight, Mix, Sequential


def run(schedule, steps: int, total: int | None = None) -> list[str]:
    """The objective of each step for a one-objective-per-step schedule."""
    out = []
    for t in range(steps):
        weights = schedule.choose(t, total or steps)
        assert list(weights.values()) == [1.0]
        out.append(next(iter(weights)))
    return out


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.75])
def test_alright_frequency_is_binomial(lam):
    """P(DPO) = lam per step: the DPO count of n i.i.d. draws lies within 4 binomial standard deviations of n lam."""
    n = 4000
    dpo = run(Alright(lam=lam, seed=3), n).count("dpo")
    assert abs(dpo - n * lam) <= 4 * math.sqrt(n * lam * (1 - lam)), dpo


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.25, 0.3, 0.5, 2 / 3, 0.75, 1.0])
def test_bresenham_hits_the_ratio_exactly_on_every_prefix(lam):
    choices = run(Alright(lam=lam, mode="bresenham"), 300)
    for t in range(1, 301):
        assert choices[:t].count("dpo") == math.floor(t * Fraction(repr(lam))), t


def test_alright_is_seeded_and_ignores_the_global_rng():
    a = run(Alright(lam=0.5, seed=7), 200)
    torch.manual_seed(123)
    torch.rand(1000)  # any other use of the global RNG must not change the schedule
    assert run(Alright(lam=0.5, seed=7), 200) == a
    assert run(Alright(lam=0.5, seed=8), 200) != a


def test_alright_state_round_trip_continues_the_same_sequence():
    full = Alright(lam=0.3, seed=11)
    expected = run(full, 100)
    first = Alright(lam=0.3, seed=11)
    head = run(first, 40)
    resumed = Alright(lam=0.3, seed=999)  # a different seed: the restored state must win
    resumed.load_state_dict(first.state_dict())
    tail = [next(iter(resumed.choose(t, 100))) for t in range(40, 100)]
    assert head + tail == expected


def test_maxright_picks_the_larger_weighted_gap_and_sft_on_ties():
    s = MaxRight(lam=0.25, optima={"sft": 1.0, "dpo": 0.1})
    s.refresh({"sft": 1.4, "dpo": 1.3})  # gaps: 0.75 * 0.4 = 0.3 vs 0.25 * 1.2 = 0.3: a tie
    assert s.gaps["sft"] == pytest.approx(0.3) and s.gaps["dpo"] == pytest.approx(0.3)
    s.gaps = {"sft": 0.3, "dpo": 0.3}  # exactly equal, as argmax sees them
    assert s.choose(0, 10) == {"sft": 1.0}
    s.refresh({"sft": 1.4, "dpo": 1.5})  # 0.3 vs 0.35
    assert s.choose(1, 10) == {"dpo": 1.0}
    s.refresh({"sft": 2.0, "dpo": 1.5})  # 0.75 vs 0.35
    assert s.choose(2, 10) == {"sft": 1.0}
    s.refresh({"sft": 0.5, "dpo": 0.05})  # both below their optimum: -0.375 vs -0.0125, compared as they are
    assert s.choose(3, 10) == {"dpo": 1.0}


def test_maxright_updates_only_the_chosen_stale_value():
    s = MaxRight(lam=0.5, refresh_every=3)
    assert s.wants_probe(0)
    with pytest.raises(RuntimeError, match="refresh"):
        MaxRight().choose(0, 10)
    s.refresh({"sft": 2.0, "dpo": 0.6})  # optima 0: gaps 1.0 and 0.3
    weights = s.choose(0, 10)
    assert weights == {"sft": 1.0}
    s.observe(weights, {"sft": 0.4})  # the chosen objective's own training loss: gap 0.2
    assert s.gaps == {"sft": pytest.approx(0.2), "dpo": pytest.approx(0.3)}
    assert s.ages == {"sft": 0, "dpo": 1}
    assert s.choose(1, 10) == {"dpo": 1.0}
    assert [s.wants_probe(t) for t in range(1, 7)] == [False, False, True, False, False, True]
    once = MaxRight(refresh_every=None)
    assert once.wants_probe(0)
    once.refresh({"sft": 1.0, "dpo": 1.0})
    assert not any(once.wants_probe(t) for t in range(1, 50))


def test_maxright_reads_optima_from_an_artefact(tmp_path):
    for name, rows in (("sft", "step,val/sft_loss\n0,3.0\n10,1.5\n20,1.7\n"),
                       ("dpo", "step,val/dpo_loss\n0,0.69\n10,0.2\n20,0.25\n")):
        (tmp_path / name / "csv").mkdir(parents=True)
        (tmp_path / name / "csv" / "metrics.csv").write_text(rows)
    path = tmp_path / "optima.json"
    assert write_optima(tmp_path / "sft", tmp_path / "dpo", path) == {"sft": 1.5, "dpo": 0.2}
    assert write_optima(tmp_path / "sft", tmp_path / "dpo", tmp_path / "last.json", take="last") == \
        {"sft": 1.7, "dpo": 0.25}
    assert load_optima(path) == {"sft": 1.5, "dpo": 0.2}
    assert MaxRight(optima_path=str(path)).optima == {"sft": 1.5, "dpo": 0.2}


@pytest.mark.parametrize("first, expected", [("sft", ["sft"] * 7 + ["dpo"] * 3), ("dpo", ["dpo"] * 3 + ["sft"] * 7)])
def test_sequential_lam_gives_the_dpo_phase_lam_of_the_steps(first, expected):
    assert run(Sequential(lam=0.3, first=first), 10) == expected


def test_sequential_explicit_phases_in_steps_and_fractions():
    phases = [{"objective": "sft", "steps": 2}, {"objective": "dpo", "fraction": 0.5}, {"objective": "sft"}]
    assert run(Sequential(lam=None, phases=phases), 8) == ["sft", "sft", "dpo", "dpo", "dpo", "dpo", "sft", "sft"]
    assert run(Sequential(lam=0.0), 4) == ["sft"] * 4 and run(Sequential(lam=1.0), 4) == ["dpo"] * 4


def test_mix_weights_both_objectives_and_drops_zero_weights():
    assert Mix(lam=0.25).choose(0, 1) == {"sft": 0.75, "dpo": 0.25}
    assert Mix(lam=0.0).choose(0, 1) == {"sft": 1.0}


@pytest.mark.parametrize("build, key", [
    (lambda: Alright(lam=1.5), r"interleave\.lam=1\.5"),
    (lambda: Alright(mode="sobol"), r"interleave\.mode='sobol'"),
    (lambda: Mix(lam=-0.1), r"interleave\.lam"),
    (lambda: MaxRight(refresh_every=0), r"interleave\.refresh_every=0"),
    (lambda: MaxRight(optima={"sft": 1.0, "dpo": 0.1}, optima_path="x.json"), r"interleave\.optima_path"),
    (lambda: MaxRight(optima={"sft": 1.0}), r"interleave\.optima"),
    (lambda: Sequential(first="rl"), r"interleave\.first='rl'"),
    (lambda: Sequential(phases=[{"objective": "sft"}]), r"interleave\.phases"),
    (lambda: Sequential(lam=None, phases=[{"objective": "sft", "steps": 2, "fraction": 0.5}, {"objective": "dpo"}]),
     r"interleave\.phases\[0\]"),
    (lambda: Sequential(lam=None, phases=[{"objective": "ppo", "steps": 2}]), r"interleave\.phases\[0\]\.objective"),
])
def test_bad_config_names_the_key(build, key):
    with pytest.raises(ValueError, match=key):
        build()
