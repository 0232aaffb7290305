"""``python train.py --help`` lists the config groups, the generated ones (model, module, ...) with the YAML ones."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT


def test_train_help_lists_the_config_groups():
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    groups = out.stdout.split("== Configuration groups ==", 1)[-1].split("== Config ==", 1)[0]
    listed = {line.split(":", 1)[0] for line in groups.splitlines() if ":" in line}
    missing = {"experiment", "model", "module", "data", "trainer"} - listed
    assert not missing, f"python train.py --help does not list {sorted(missing)}:\n{groups}"
    assert "tiny" in next(line for line in groups.splitlines() if line.startswith("model:"))
