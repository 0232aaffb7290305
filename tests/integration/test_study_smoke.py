"""Every study (``experiments/<study>/run.py``) runs end to end under ``--smoke``: studies cannot rot.

Each study runs its real ``train.py`` / ``eval.py`` commands, phases and report code at a tiny size into ``tmp_path``
(``--out``), with stand-ins for what CI lacks (``experiments/smoke.py``). It must exit 0, write its report there, and
leave its own folder (the committed ``results/``, pairs and data files) untouched; then ``--report-only`` must
rebuild the report with ``runs/`` deleted, from what ``results/`` keeps. A new study is picked up by the glob.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.smoke import parse_args
from tests.helpers import ROOT

STUDIES = sorted(path.parent.name for path in (ROOT / "experiments").glob("*/run.py"))
# What each study's run.py writes under results/ (the rest of its committed results/ is written by hand). A study
# not listed here must still write at least one non-empty file there.
REPORTS = {
    "diversity_toy": ["metrics.json", "results.md", "frontier.png", "at_k.png"],
    "interleave_toy": ["optima.json", "results.md", "tradeoff.md", "tradeoff.png"],
    "objectives_toy": ["metrics.json", "results.md", "objectives_toy.png"],
    "sdft_toy": ["metrics.json", "results.md", "forgetting.png"],
    "smollm2_gem": ["metrics.json", "state.json", "diversity_vs_pass1.png"],
    "smollm2_interleave": ["metrics.json", "optima.json", "state.json", "tradeoff.md", "tradeoff.png"],
    "smollm2_sdft": ["metrics.json", "state.json", "comparison.md", "paired.png", "forgetting_vs_gain.png"],
}
# The studies that evaluate through eval.py: their samples are archived under results/samples/ (gzipped, to commit).
ARCHIVED = {"diversity_toy", "objectives_toy", "sdft_toy", "smollm2_gem", "smollm2_sdft"}
# The interleave studies keep each validation's per-example values instead (callback=validation_examples).
VAL_EXAMPLES = {"interleave_toy", "smollm2_interleave"}
TIMEOUT_S = 400


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (bytecode caches aside): its size and modification time."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_study_smoke(study, tmp_path):
    before = snapshot(ROOT / "experiments" / study)
    out = tmp_path / "out"
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, f"experiments/{study}/run.py", "--smoke", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    results = out / "results"
    written = sorted(path.name for path in results.iterdir() if path.is_file()) if results.is_dir() else []
    assert set(REPORTS.get(study, [])) <= set(written) and written, f"{study} wrote {written} under {results}"
    assert all((results / name).stat().st_size > 0 for name in written), f"an empty report file in {results}"
    if study in ARCHIVED:
        assert list((results / "samples").rglob("samples.jsonl.gz")), f"{study} archived no evaluation samples"
    if study in VAL_EXAMPLES:
        assert list((results / "val_examples").glob("*.jsonl.gz")), f"{study} archived no validation examples"

    # the committed results/ alone rebuild the report: --report-only with runs/ gone
    shutil.rmtree(out / "runs")
    proc = subprocess.run([sys.executable, f"experiments/{study}/run.py", "--smoke", "--out", str(out),
                           "--report-only"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert snapshot(ROOT / "experiments" / study) == before, f"--smoke wrote into experiments/{study}/"


def study_args(monkeypatch, here: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=600)
    monkeypatch.setattr(sys, "argv", ["run.py", *argv])
    return parse_args(parser, here, steps=4)


def test_smoke_arguments(monkeypatch, tmp_path):
    """--smoke makes the smoke sizes the defaults (a given flag still wins) and writes under --out, never the study's
    own folder; without it the study's folder and full sizes stay."""
    here = tmp_path / "study"
    assert vars(study_args(monkeypatch, here)) == {"steps": 600, "smoke": False, "out": here}
    assert vars(study_args(monkeypatch, here, "--smoke")) == {"steps": 4, "smoke": True, "out": here / "smoke"}
    assert study_args(monkeypatch, here, "--smoke", "--steps", "7", "--out", str(tmp_path)).steps == 7
    with pytest.raises(SystemExit):
        study_args(monkeypatch, here, "--smoke", "--out", str(here))
