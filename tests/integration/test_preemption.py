"""SIGTERM mid-run saves last.ckpt at that step; ``ckpt_path=auto`` continues it to the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from tests.helpers import ROOT

COMMON = ["experiment=quickstart", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
          "data.num_train=96", "data.batch_size=8", "trainer.max_steps=200", "trainer.val_check_interval=100",
          "callbacks.task_accuracy.num_prompts=2", "callbacks.hf_export=null", "callbacks.progress_bar=null",
          "validate_before_fit=false", "cpu_threads=1"]


def command(run_dir, *extra):
    return [sys.executable, str(ROOT / "train.py"), *COMMON, f"hydra.run.dir={run_dir}", *extra]


def final_weights(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    return state["global_step"], state["state_dict"]


class PauseAt(Callback):
    """At the start of optimizer step ``step`` (0-based: the ``step + 1``-th), write ``marker`` and wait there until
    the SIGTERM arrives, so the test knows exactly which step the signal lands in, with no sleep on its side."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self.step:
            return
        self.marker.write_text(str(self.step))
        deadline = time.monotonic() + 120
        while not trainer._signal_connector.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.slow
def test_sigterm_then_auto_resume_gives_the_uninterrupted_run(tmp_path):
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
    subprocess.run(command(tmp_path / "full"), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    run_dir, marker = tmp_path / "part", tmp_path / "paused"
    pause = [f"++callbacks.pause._target_={__name__}.PauseAt", "++callbacks.pause.step=150",
             f"++callbacks.pause.marker={marker}"]
    proc = subprocess.Popen(command(run_dir, "ckpt_path=auto", *pause), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read()[-2000:] if proc.poll() is not None else "no step 150 in 300 s"
    proc.send_signal(signal.SIGTERM)  # during step 151, after the step-100 validation's checkpoint
    _, stderr = proc.communicate(timeout=300)
    step, _ = final_weights(run_dir)
    assert step == 151, (step, stderr[-2000:])  # the step SIGTERM stopped, not the step-100 last.ckpt

    subprocess.run(command(run_dir, "ckpt_path=auto"), cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=600)
    (full_step, full), (resumed_step, resumed) = final_weights(tmp_path / "full"), final_weights(run_dir)
    assert resumed_step == full_step == 200
    for name, value in full.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)
