"""Adding an objective is two pieces plus a registration, all outside ``src/``: a loss with its forms, a module with one
method, and ``register_objective``. ``python train.py module=<name>`` then trains it under every ``module.loss_impl``
its loss declares, with the same numbers on each, and refuses the others by name at configuration."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY_MODEL

SHORT = ["trainer.max_steps=3", "trainer.log_every_n_steps=1", "hydra.run.dir=run", "cpu_threads=1",
         "++callbacks.progress_bar=null", *TINY_MODEL]


@pytest.fixture(scope="module")
def plugin_dir():
    return ROOT / "examples"  # examples/tempered_ce.py: the objective docs/extending.md walks through


def train(plugin_dir, workdir, *overrides):
    env = {**os.environ, "PROJECT_ROOT": str(workdir), "WANDB_MODE": "offline", "POSTTRAIN_PLUGINS": "tempered_ce",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_dir)])}
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "module=tempered_ce", *overrides],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def declared_impls(plugin_dir) -> tuple[str, ...]:
    """Read in a subprocess: importing the plugin here would register ``module=tempered_ce`` for every later test."""
    code = "import tempered_ce; print(','.join(tempered_ce.TemperedCE.loss_impls))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_dir)])})
    return tuple(out.stdout.strip().split(","))


def first_train_loss(run) -> float:
    with open(run / "csv" / "metrics.csv") as f:
        return next(float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss"))


def test_the_loss_forms_set_the_loss_impls(plugin_dir):
    assert declared_impls(plugin_dir) == ("plain", "chunked")  # no fused form: cce and liger are not offered


def test_a_new_objective_trains_through_the_cli_under_every_loss_impl_it_declares(plugin_dir, tmp_path):
    losses = {}
    for impl in declared_impls(plugin_dir):
        out = train(plugin_dir, tmp_path / impl, f"module.loss_impl={impl}", "module.temperature=3.0", *SHORT)
        assert out.returncode == 0, out.stderr[-4000:]
        losses[impl] = first_train_loss(tmp_path / impl / "run")
        assert math.isfinite(losses[impl])
    assert losses["chunked"] == pytest.approx(losses["plain"], rel=1e-4)  # the same loss on either head path


def test_its_keys_show_in_cfg_job(plugin_dir, tmp_path):
    out = train(plugin_dir, tmp_path, "module.temperature=3.0", "--cfg", "job")
    assert out.returncode == 0, out.stderr[-4000:]
    assert "_target_: tempered_ce.TemperedCE" in out.stdout
    assert "temperature: 3.0" in out.stdout and "loss_impl: auto" in out.stdout


def test_an_undeclared_loss_impl_is_refused_by_name(plugin_dir, tmp_path):
    out = train(plugin_dir, tmp_path, "module.loss_impl=cce", *SHORT)
    assert out.returncode != 0
    assert "module.loss_impl='cce'" in out.stderr
    assert "TemperedCE has no cce loss (tempered_ce offers plain, chunked" in out.stderr


def test_a_plugin_that_does_not_import_is_named(tmp_path):
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "POSTTRAIN_PLUGINS": "no_such_plugin"}
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "--cfg", "job"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "$POSTTRAIN_PLUGINS: cannot import 'no_such_plugin'" in out.stderr
