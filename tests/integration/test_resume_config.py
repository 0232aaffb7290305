"""``python train.py`` resumed into a run of another experiment stops at once with one line naming what differs;
``resume_config_check=false`` lets it through. The first run also writes its curves and links them in its card."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY, TINY_MODEL

SHORT = [*TINY, *TINY_MODEL, "data.num_train=32", "data.num_val=8", "callbacks.task_accuracy.num_prompts=2",
         "trainer.max_steps=2", "cpu_threads=1"]


def train_py(run_dir, *overrides) -> subprocess.CompletedProcess:
    args = [sys.executable, "train.py", *SHORT, f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resume_into_another_experiment_is_refused_unless_allowed(tmp_path):
    run = tmp_path / "run"
    assert (first := train_py(run, "experiment=quickstart")).returncode == 0, first.stderr[-3000:]
    assert (run / "curves.png").stat().st_size > 10_000
    assert "![training and validation curves](curves.png)" in (run / "hf" / "README.md").read_text()
    assert (run / "hf" / "curves.png").is_file()

    refused = train_py(run, "experiment=gem_toy", "ckpt_path=auto")
    assert refused.returncode != 0
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("ValueError")]
    assert "module._target_: 'src.modules.ce.CEModule' -> 'src.modules.gem.GEMModule'" in line
    assert "module.beta: (absent) -> 0.7" in line and "resume_config_check=false" in line
    assert "size mismatch" not in refused.stderr
    assert "CEModule" in (run / ".hydra" / "config.yaml").read_text()  # the run's own config, put back

    other_size = train_py(run, "experiment=quickstart", "model.hidden_size=64", "ckpt_path=auto")
    assert "model.hidden_size: 32 -> 64" in other_size.stderr and "size mismatch" not in other_size.stderr

    allowed = train_py(run, "experiment=gem_toy", "ckpt_path=auto", "resume_config_check=false")
    assert allowed.returncode == 0, allowed.stderr[-3000:]  # the run was complete: restored, nothing to train
    assert "already complete" in allowed.stdout + allowed.stderr
