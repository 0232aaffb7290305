"""SFT/DPO interleaving schedules (XRIGHT, arXiv 2410.15483): which loss(es) each optimizer step trains on.

A schedule is a small pure object: ``choose(step, total_steps)`` returns the step's loss weights, e.g.
``{"dpo": 1.0}`` (one objective) or ``{"sft": 0.5, "dpo": 0.5}`` (both, one backward). Objectives missing from the
weights are not computed at all, so their data streams do not advance. ``lam`` is the DPO share everywhere
(probability, weight or fraction of steps), the SFT share is ``1 - lam``. The scheduler callback
(``src.callbacks.interleave_scheduler``) applies a schedule once per optimizer step and keeps its ``state_dict`` in
checkpoints.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from src.interleave.optima import load_optima
from src.utils.checks import require, require_choice

OBJECTIVES = ("sft", "dpo")
Weights = dict[str, float]  # objective -> weight of its loss in this step's backward


def _check_lam(lam: float) -> float:
    require(0.0 <= lam <= 1.0, "interleave.lam", lam, "in [0, 1] (the DPO share)")
    return float(lam)


def share(objective: str, lam: float) -> float:
    """The weight ``lam`` gives ``objective``: ``lam`` for DPO, ``1 - lam`` for SFT."""
    return lam if objective == "dpo" else 1.0 - lam


class Schedule:
    """The interface. ``observe`` gets the (rank-averaged) training loss of each objective the step just used;
    ``wants_probe``/``refresh`` let a schedule ask for held-out losses of *both* objectives before choosing."""

    def choose(self, step: int, total_steps: int) -> Weights:
        raise NotImplementedError

    def observe(self, weights: Weights, losses: dict[str, float]) -> None:
        """Training losses of the objectives in ``weights``, measured before this step's update."""

    def wants_probe(self, step: int) -> bool:
        return False

    def refresh(self, losses: dict[str, float]) -> None:
        """Held-out losses of every objective (only called after ``wants_probe`` said so)."""

    def metrics(self) -> dict[str, float]:
        """Extra per-step diagnostics to log under ``schedule/``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Sequential(Schedule):
    """Phases of one objective each (XRIGHT's sequential baseline, e.g. SFT then DPO).

    Either ``lam``: two phases, ``first`` then the other, the DPO phase lasting ``round(lam * total_steps)`` steps
    (XRIGHT: ``lam = T_DPO / (T_SFT + T_DPO)``); or ``phases`` (with ``lam: null``): a list of
    ``{objective, steps}`` or ``{objective, fraction}`` (of the total steps); the last phase may omit its length and
    then runs to the end.
    """

    def __init__(self, lam: float | None = 0.5, first: str = "sft", phases: list[dict[str, Any]] | None = None):
        require((lam is None) != (phases is None), "interleave.phases", phases,
                "either interleave.lam or interleave.phases (set interleave.lam=null to give phases)")
        if phases is None:
            require_choice("interleave.first", first, OBJECTIVES)
            lam = _check_lam(lam)
            second = "dpo" if first == "sft" else "sft"
            phases = [{"objective": first, "fraction": share(first, lam)}, {"objective": second}]
        self.phases = [self._parse(i, dict(p), last=i == len(phases) - 1) for i, p in enumerate(phases)]

    @staticmethod
    def _parse(i: int, phase: dict[str, Any], last: bool) -> dict[str, Any]:
        key = f"interleave.phases[{i}]"
        require_choice(f"{key}.objective", phase.get("objective"), OBJECTIVES)
        lengths = [k for k in ("steps", "fraction") if phase.get(k) is not None]
        require(len(lengths) == 1 or (last and not lengths), key, phase,
                "exactly one of 'steps' or 'fraction' (only the last phase may have neither)")
        if "steps" in lengths:
            require(int(phase["steps"]) >= 0, f"{key}.steps", phase["steps"], ">= 0")
        if "fraction" in lengths:
            require(0.0 <= phase["fraction"] <= 1.0, f"{key}.fraction", phase["fraction"], "in [0, 1]")
        return phase

    def ends(self, total_steps: int) -> list[float]:
        """The first step after each phase; the last phase never ends."""
        ends, at = [], 0
        for phase in self.phases[:-1]:
            at += int(phase["steps"]) if phase.get("steps") is not None else round(phase["fraction"] * total_steps)
            ends.append(at)
        return ends + [math.inf]

    def choose(self, step: int, total_steps: int) -> Weights:
        for phase, end in zip(self.phases, self.ends(total_steps)):
            if step < end:
                return {phase["objective"]: 1.0}
        raise AssertionError("unreachable: the last phase never ends")


class Mix(Schedule):
    """Both objectives every step, ``(1 - lam) L_sft + lam L_dpo`` in one backward (XRIGHT's
    ``sft_dpo_mix_trainer.py``).
    An objective with weight 0 is left out rather than computed for nothing."""

    def __init__(self, lam: float = 0.5):
        self.lam = _check_lam(lam)

    def choose(self, step: int, total_steps: int) -> Weights:
        return {obj: share(obj, self.lam) for obj in OBJECTIVES if share(obj, self.lam) > 0}


class Alright(Schedule):
    """ALRIGHT (XRIGHT's ``sft_dpo_alright_trainer.py``): one objective per step, DPO with probability ``lam``.

    ``mode="random"`` draws i.i.d. from a dedicated, seeded ``torch.Generator`` (never the global RNG, which any
    library may consume; its state rides in the checkpoint). ``mode="bresenham"`` is the deterministic
    low-discrepancy alternative: step ``t`` is DPO iff ``floor((t+1) lam) > floor(t lam)``, so after every prefix of
    ``T`` steps exactly ``floor(T lam)`` were DPO (``lam`` is read as the exact decimal it was written as).
    """

    MODES = ("random", "bresenham")

    def __init__(self, lam: float = 0.5, seed: int = 0, mode: str = "random"):
        self.lam = _check_lam(lam)
        require_choice("interleave.mode", mode, self.MODES)
        self.mode, self.seed = mode, seed
        self.exact = Fraction(repr(self.lam))  # 0.3 -> 3/10 exactly, so floor() never sees 2.9999999
        self.generator = torch.Generator().manual_seed(seed)

    def choose(self, step: int, total_steps: int) -> Weights:
        if self.mode == "bresenham":
            dpo = math.floor((step + 1) * self.exact) > math.floor(step * self.exact)
        else:
            dpo = torch.rand((), generator=self.generator).item() < self.lam  # one draw per step, whatever lam is
        return {"dpo": 1.0} if dpo else {"sft": 1.0}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class MaxRight(Schedule):
    """MAXRIGHT (XRIGHT's ``sft_dpo_maxright_trainer.py``): train the objective with the larger weighted
    optimality gap, ``(1 - lam)(L_sft - L_sft*)`` vs ``lam (L_dpo - L_dpo*)``; ties go to SFT (XRIGHT's ``argmax``
    order).

    The gaps are *stale* values: both are measured on held-out probe batches every ``refresh_every`` steps (and at
    step 0; ``None``: only at step 0), and the chosen objective's gap is updated from its own training loss after
    each step. ``optima`` (``{sft, dpo}``) or ``optima_path`` (a JSON artefact written by ``src.interleave.optima``
    from single-objective runs) give ``L*``; without either they are 0, as XRIGHT allows when they are unknown.
    """

    def __init__(self, lam: float = 0.5, optima: dict[str, float] | None = None, optima_path: str | None = None,
                 refresh_every: int | None = 10):
        self.lam = _check_lam(lam)
        require(optima is None or optima_path is None, "interleave.optima_path", optima_path,
                "null when interleave.optima is given (one source for the optima)")
        require(refresh_every is None or refresh_every >= 1, "interleave.refresh_every", refresh_every,
                ">= 1, or null to probe only at step 0")
        self.optima = load_optima(optima_path) if optima_path else dict(optima or {"sft": 0.0, "dpo": 0.0})
        require(set(self.optima) == set(OBJECTIVES), "interleave.optima", self.optima, "keys exactly sft and dpo")
        self.refresh_every = refresh_every
        self.gaps: dict[str, float | None] = {obj: None for obj in OBJECTIVES}
        self.ages = {obj: 0 for obj in OBJECTIVES}  # optimizer steps since each gap was measured

    def gap(self, objective: str, loss: float) -> float:
        return share(objective, self.lam) * (loss - self.optima[objective])

    def wants_probe(self, step: int) -> bool:
        due = self.refresh_every is not None and step % self.refresh_every == 0
        return due or any(g is None for g in self.gaps.values())

    def refresh(self, losses: dict[str, float]) -> None:
        for obj in OBJECTIVES:
            self.gaps[obj], self.ages[obj] = self.gap(obj, losses[obj]), 0

    def choose(self, step: int, total_steps: int) -> Weights:
        if any(g is None for g in self.gaps.values()):
            raise RuntimeError("MaxRight.choose before refresh(): probe both objectives first (see wants_probe)")
        return {"dpo": 1.0} if self.gaps["dpo"] > self.gaps["sft"] else {"sft": 1.0}

    def observe(self, weights: Weights, losses: dict[str, float]) -> None:
        for obj in OBJECTIVES:
            self.ages[obj] += 1
        for obj in weights:
            self.gaps[obj], self.ages[obj] = self.gap(obj, losses[obj]), 0

    def metrics(self) -> dict[str, float]:
        out = {f"{obj}_gap": g for obj, g in self.gaps.items() if g is not None}
        return out | {f"{obj}_gap_age": float(a) for obj, a in self.ages.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"gaps": dict(self.gaps), "ages": dict(self.ages), "optima": dict(self.optima)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gaps, self.ages = dict(state["gaps"]), dict(state["ages"])
