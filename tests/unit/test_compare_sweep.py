"""``python -m src.eval.compare`` on a train.py sweep: rows and panels labelled by the swept values, one readable
panel per metric, a line against the value when one number is swept."""

from __future__ import annotations

import json

import yaml

from src.eval.compare import main
from src.eval.reports.compare_figure import MAX_PANELS, figure
from src.eval.reports.comparison import load, set_labels
from src.eval.reports.swept import swept

TRAIN_METRICS = {"lr-AdamW": 1e-5, "step": 20.0, "train/ce": 4.8, "train/loss": -0.2, "train/tokens_per_sec": 1e4,
                 "val/accuracy": 0.05, "val/ce": 4.8, "val/ppl": 125.0}


def write_run(path, overrides, metrics=None, beta=0.7, experiment="gem_toy"):
    """A train.py job directory as compare reads it: metrics.json and .hydra/{config,overrides,hydra}.yaml."""
    (path / ".hydra").mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics or TRAIN_METRICS))
    config = {"experiment_name": experiment, "seed": 42, "module": {"_target_": "src.modules.gem.GEMModule",
                                                                     "beta": beta}}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"experiment": experiment, "module": "gem", "module/optimizer": "adamw"}
    (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    return path


def beta_sweep(root, betas=(0.3, 0.7, 0.9), extra=lambda i: []):
    for i, beta in enumerate(betas):
        metrics = {**TRAIN_METRICS, "val/ce": 5.0 - beta, "train/ce": 5.1 - beta}
        write_run(root / str(i), ["experiment=gem_toy", f"module.beta={beta}", "trainer.max_steps=20", *extra(i)],
                  metrics, beta)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def labels_in_table(path) -> list[str]:
    lines = (path / "comparison.md").read_text().splitlines()
    return [line.strip("|").split("|")[0].strip() for line in lines if line.startswith("| ")][1:]


def test_rows_are_labelled_by_the_swept_value_and_plotted_against_it(tmp_path):
    sweep = beta_sweep(tmp_path / "sweep")
    main([str(sweep)])
    assert labels_in_table(sweep) == ["module.beta=0.3", "module.beta=0.7", "module.beta=0.9"]
    runs = [load(sweep / str(i)) for i in range(3)]
    set_labels(runs, [])
    fig, kind = figure(runs, list(TRAIN_METRICS))
    assert kind == "lines"
    panels = [ax for ax in fig.axes if ax.axison]
    # step, learning rate and throughput stay in the table; validation first
    assert [ax.get_title() for ax in panels] == ["val/accuracy", "val/ce", "val/ppl", "train/ce", "train/loss"]
    ce = panels[1]
    assert ce.get_xlabel() == "module.beta"
    assert [t.get_text() for t in ce.get_xticklabels()] == ["0.3", "0.7", "0.9"]
    assert list(ce.get_lines()[0].get_ydata()) == [4.7, 4.3, 4.1]
    width, height = fig.get_size_inches()
    assert width <= 12 and height <= 6  # 3 columns of 4 x 3 inches, not a 40-inch strip


def test_two_swept_keys_give_bars_labelled_by_both(tmp_path):
    sweep = beta_sweep(tmp_path / "sweep", (0.3, 0.3, 0.7), extra=lambda i: [f"module.h={'linear' if i else 'log'}"])
    runs = [load(sweep / str(i)) for i in range(3)]
    set_labels(runs, [])
    expected = ["module.beta=0.3 module.h=log", "module.beta=0.3 module.h=linear", "module.beta=0.7 module.h=linear"]
    assert [run.label for run in runs] == expected
    fig, kind = figure(runs, list(TRAIN_METRICS))
    assert kind == "bars"
    for ax in (ax for ax in fig.axes if ax.axison):
        assert [t.get_text() for t in ax.get_xticklabels()] == expected


def test_a_key_one_run_did_not_set_shows_that_runs_value(tmp_path):
    a = write_run(tmp_path / "a", ["experiment=gem_toy", "module.beta=0.3"], beta=0.3)
    b = write_run(tmp_path / "b", [], beta=0.7, experiment="quickstart")  # defaults: from its choices and config
    assert swept([a, b], [load(a).config, load(b).config]) == [{"experiment": "gem_toy", "module.beta": "0.3"},
                                                               {"experiment": "quickstart", "module.beta": "0.7"}]


def test_many_metrics_stay_within_a_bounded_grid(tmp_path):
    metrics = {f"val/m{i}": float(i) for i in range(30)}
    runs = [load(write_run(tmp_path / str(i), [f"seed={i}", f"module.h=h{i}"], metrics)) for i in range(2)]
    set_labels(runs, [])
    fig, _ = figure(runs, list(metrics))
    assert len([ax for ax in fig.axes if ax.axison]) == MAX_PANELS
    width, height = fig.get_size_inches()
    assert width <= 12 and height <= 12
