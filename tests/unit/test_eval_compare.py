"""The comparison utility on hand-written evaluation directories: labels, columns, values, figure, multirun, errors."""

from __future__ import annotations

import json

import pytest

from src.eval.compare import main
from src.eval.reports.comparison import columns, expand, load, set_labels, write_figure

SWEEP = {  # temperature -> metrics.json of a toyworld_sampled evaluation with n=4
    0.6: {"accuracy": 0.5, "pass@1": 0.5, "pass@2": 0.6, "pass@4": 0.7, "maj@4": 0.55, "self_bleu": 40.0,
          "distinct_2": 0.3, "prompts": 10},
    1.0: {"accuracy": 0.4, "pass@1": 0.4, "pass@2": 0.55, "pass@4": 0.75, "maj@4": 0.5, "self_bleu": 25.0,
          "distinct_2": 0.5, "prompts": 10},
    1.4: {"accuracy": 0.2, "pass@1": 0.2, "pass@2": 0.35, "pass@4": 0.6, "maj@4": 0.25, "self_bleu": 10.0,
          "distinct_2": 0.8, "prompts": 10},
}


def write_eval(path, metrics, temperature=1.0, model="/runs/sft-a/hf", task="toyworld_sampled"):
    (path / ".hydra").mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({f"{task}/{k}": v for k, v in metrics.items()}))
    (path / ".hydra" / "config.yaml").write_text(
        f"model_path: {model}\neval:\n  name: {task}\n  num_prompts: 10\n"
        f"  generation:\n    n: 4\n    temperature: {temperature}\n    seed: 0\n    batch_size: 32\n")
    return path


@pytest.fixture
def sweep(tmp_path):
    return [write_eval(tmp_path / f"t{t}", metrics, t) for t, metrics in SWEEP.items()]


def table_rows(path):
    lines = (path / "comparison.md").read_text().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]


def test_table_rows_labels_and_largest_k(sweep, tmp_path):
    main([str(d) for d in sweep] + ["--out-dir", str(tmp_path / "out")])
    header, *rows = table_rows(tmp_path / "out")
    task = "toyworld_sampled/"
    # pass@1 and pass@2 are left out: of each at-k curve only the largest k; only the temperature differs
    assert header == ["run"] + [task + m for m in ("accuracy", "pass@4", "maj@4", "self_bleu", "distinct_2", "prompts")]
    assert rows == [["sft-a T=0.6", "0.5", "0.7", "0.55", "40", "0.3", "10"],
                    ["sft-a T=1", "0.4", "0.75", "0.5", "25", "0.5", "10"],
                    ["sft-a T=1.4", "0.2", "0.6", "0.25", "10", "0.8", "10"]]
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 10_000


def test_metrics_patterns_select_columns_and_label_key_extends_labels(sweep, tmp_path):
    main([str(d) for d in sweep] + ["--out-dir", str(tmp_path), "--metrics", "pass@*", "toyworld_sampled/maj@4",
                                    "--label-key", "eval.num_prompts"])
    header, first, *_ = table_rows(tmp_path)
    assert header == ["run"] + [f"toyworld_sampled/{m}" for m in ("pass@1", "pass@2", "pass@4", "maj@4")]
    assert first == ["sft-a T=0.6 num_prompts=10", "0.5", "0.6", "0.7", "0.55"]


def test_figure_is_the_tradeoff_scatter_with_diversity_else_bars(sweep, tmp_path):
    runs = [load(d) for d in sweep]
    assert write_figure(runs, columns(runs, None), tmp_path / "a.png") == "tradeoff"
    plain = [write_eval(tmp_path / name, {"accuracy": acc}, model=f"/runs/{name}", task="toyworld")
             for name, acc in (("sft", 0.3), ("dpo", 0.4))]
    runs = [load(d) for d in plain]
    set_labels(runs, [])
    assert [run.label for run in runs] == ["sft", "dpo"]  # same decoding: the model alone
    assert write_figure(runs, columns(runs, None), tmp_path / "b.png") == "bars"
    assert (tmp_path / "b.png").stat().st_size > 5_000


def test_multirun_directory_expands_into_its_jobs(tmp_path):
    multirun = tmp_path / "multirun"
    for job, t in enumerate((0.6, 1.4)):
        write_eval(multirun / str(job), SWEEP[t], t)
    (multirun / "multirun.yaml").write_text("hydra: {}\n")
    assert expand(multirun) == [multirun / "0", multirun / "1"]
    main([str(multirun)])  # writes into the multirun directory, the common parent
    assert [row[0] for row in table_rows(multirun)[1:]] == ["sft-a T=0.6", "sft-a T=1.4"]


def test_a_directory_without_metrics_is_named(sweep, tmp_path):
    empty = tmp_path / "not_an_eval"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="not_an_eval: no metrics.json"):
        main([str(sweep[0]), str(empty)])
