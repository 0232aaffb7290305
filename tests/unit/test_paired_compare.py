"""Paired differences in ``python -m src.eval.compare`` from hand-written evaluation directories in the real format
(samples.jsonl records as src/eval/tasks/task.py writes them, metrics.json from the real metric functions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.eval.compare import main
from src.eval.metrics.bootstrap import paired_bootstrap
from src.eval.metrics.distinct import diversity
from src.eval.metrics.sampling_metrics import best_of_n, maj_at_k, mean_pass_at_k
from src.eval.metrics.self_bleu import mean_self_bleu

TASK = "toyworld_sampled"
BASE = [[1, 0], [0, 0], [1, 1], [0, 1], [0, 0]]  # correct[prompt][sample]: per prompt .5 0 1 .5 0, mean 0.4
GEM = [[1, 1], [1, 0], [1, 1], [0, 1], [1, 0]]  # per prompt 1 .5 1 .5 .5, mean 0.7
WORDS = ["so", "thus", "then", "hence"]


def write_run(path, correct, model="base", seed=0, drop=(), metrics_patch=None):
    """An evaluation of ``model`` with ``correct[p][i]``; a right answer is 7, a wrong one 3 (or none: no vote)."""
    ids = [str(p) for p in range(len(correct)) if str(p) not in drop]
    records, answers, texts, scores = [], [], [], []
    for pid in ids:
        p = int(pid)
        found = ["7" if c else ("3" if (p + i) % 2 else None) for i, c in enumerate(correct[p])]
        group = [f"{WORDS[(p + i) % 4]} {p} {i} the answer is {a}" for i, a in enumerate(found)]
        answers.append(found)
        texts.append(group)
        scores.append([-float((p + 2 * i) % 3) for i in range(len(found))])  # the policy's mean log-prob
        records += [{"task": TASK, "id": pid, "sample": i, "prompt": f"question {p}", "response": text,
                     "num_tokens": 8, "truncated": False, "answer": a, "correct": bool(correct[p][i]),
                     "score_logprob": score} for i, (a, text, score) in enumerate(zip(found, group, scores[-1]))]
    rows = [correct[int(pid)] for pid in ids]
    metrics = {"accuracy": float(np.mean(rows)), **{f"pass@{k}": v for k, v in mean_pass_at_k(rows, [1, 2]).items()},
               **{f"maj@{k}": v for k, v in maj_at_k(answers, ["7"] * len(ids), [1, 2]).items()},
               **{f"bon_logprob@{k}": v for k, v in best_of_n(scores, rows, [1, 2]).items()},
               **diversity(texts, (2,)), "self_bleu": mean_self_bleu(texts), "prompts": len(ids)}
    metrics.update(metrics_patch or {})
    (path / ".hydra").mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({f"{TASK}/{k}": v for k, v in metrics.items()}))
    (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / ".hydra" / "config.yaml").write_text(
        f"model_path: /runs/{model}/hf\neval:\n  name: {TASK}\n  generation:\n    n: 2\n    temperature: 1.0\n"
        f"    seed: {seed}\n")
    return str(path)


def paired_table(out):
    text = (out / "comparison.md").read_text()
    section = text[text.index("## Paired differences"):]
    return {cells[0]: cells[1:] for line in section.splitlines() if line.startswith("| ") and "---" not in line
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}


def per_prompt(correct):
    return np.array(correct, float).mean(1)


def test_cli_row_has_the_paired_difference_and_interval(tmp_path):
    base, gem = write_run(tmp_path / "base", BASE), write_run(tmp_path / "gem", GEM, model="gem")
    main([base, gem, "--out-dir", str(tmp_path / "out"), "--resamples", "2000", "--bootstrap-seed", "3"])
    rows = paired_table(tmp_path / "out")
    assert rows["metric"] == ["baseline", "method", "baseline value", "method value", "difference", "95% CI",
                              "prompts", "seeds"]
    interval = paired_bootstrap(per_prompt(BASE), per_prompt(GEM), 2000, seed=3)
    assert rows[f"{TASK}/accuracy"] == ["base", "gem", "0.4", "0.7", "+0.3", f"[{interval.low:.4g}, "
                                        f"{interval.high:.4g}]", "5", "1 / 1"]
    # the table's columns (largest k of each curve), each recomputed from the samples and matching metrics.json
    assert set(rows) - {"metric"} == {f"{TASK}/{m}" for m in ("accuracy", "pass@2", "maj@2", "bon_logprob@2",
                                                               "distinct_2", "self_bleu")}
    assert (tmp_path / "out" / "paired.png").stat().st_size > 5_000
    record = next(r for r in json.loads((tmp_path / "out" / "paired.json").read_text())
                  if r["metric"] == f"{TASK}/accuracy")  # the same row, unrounded, for a study's report
    assert record == {"metric": f"{TASK}/accuracy", "baseline": "base", "method": "gem", "baseline_value": 0.4,
                      "method_value": 0.7, "difference": interval.difference, "low": interval.low,
                      "high": interval.high, "prompts": 5, "seeds": [1, 1], "dropped": 0}


def test_prompts_are_matched_by_id_not_by_line(tmp_path):
    base, gem = write_run(tmp_path / "base", BASE), write_run(tmp_path / "gem", GEM, model="gem")
    main([base, gem, "--out-dir", str(tmp_path / "in_order"), "--resamples", "300"])
    lines = (tmp_path / "gem" / "samples.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "gem" / "samples.jsonl").write_text("".join(reversed(lines)))
    main([base, gem, "--out-dir", str(tmp_path / "reversed"), "--resamples", "300"])
    assert paired_table(tmp_path / "reversed") == paired_table(tmp_path / "in_order")


def test_seeds_of_a_method_are_grouped_and_averaged(tmp_path):
    """Runs differing only in eval.generation.seed form one method; its value is the mean over its seeds."""
    other = [[1, 1], [0, 0], [1, 1], [1, 1], [0, 0]]  # per prompt 1 0 1 1 0, mean 0.6
    dirs = [write_run(tmp_path / "b", BASE, seed=0), write_run(tmp_path / "g1", GEM, "gem", seed=1),
            write_run(tmp_path / "g2", other, "gem", seed=2)]
    main(dirs + ["--out-dir", str(tmp_path), "--resamples", "500", "--metrics", "accuracy"])
    method = np.stack([per_prompt(GEM), per_prompt(other)])
    interval = paired_bootstrap(per_prompt(BASE), method, 500, seed=0)
    assert paired_table(tmp_path)[f"{TASK}/accuracy"] == [
        "base", "gem", "0.4", "0.65", "+0.25", f"[{interval.low:.4g}, {interval.high:.4g}]", "5", "1 / 2"]


def test_explicit_groups_and_baseline(tmp_path):
    a, b = write_run(tmp_path / "a", BASE, "sft-seed0"), write_run(tmp_path / "b", BASE, "sft-seed1")
    c = write_run(tmp_path / "c", GEM, "gem-seed0")
    main(["--group", f"sft={a},{b}", "--group", f"gem={c}", "--baseline", "gem", "--out-dir", str(tmp_path),
          "--resamples", "200", "--metrics", "accuracy"])
    row = paired_table(tmp_path)[f"{TASK}/accuracy"]
    assert row[:5] + row[6:] == ["gem", "sft", "0.7", "0.4", "-0.3", "5", "1 / 2"]


def test_a_missing_prompt_is_named_or_dropped(tmp_path, capsys):
    base, gem = write_run(tmp_path / "base", BASE), write_run(tmp_path / "gem", GEM, "gem", drop=("4",))
    with pytest.raises(ValueError, match=r"prompt id '4' is in .*base but not in .*gem"):
        main([base, gem, "--out-dir", str(tmp_path), "--resamples", "100"])
    main([base, gem, "--out-dir", str(tmp_path), "--resamples", "100", "--allow-missing", "--metrics", "accuracy"])
    assert "1 prompts not in every run, dropped" in capsys.readouterr().err
    row = paired_table(tmp_path)[f"{TASK}/accuracy"]
    assert row[2:5] + row[6:] == ["0.5", "0.75", "+0.25", "4 (1 dropped)", "1 / 1"]  # on prompts 0-3 only


def test_a_metric_the_samples_do_not_reproduce_is_left_out(tmp_path):
    base = write_run(tmp_path / "base", BASE, metrics_patch={"accuracy": 0.45})
    gem = write_run(tmp_path / "gem", GEM, "gem")
    main([base, gem, "--out-dir", str(tmp_path), "--resamples", "100", "--metrics", "accuracy", "pass@1"])
    text = (tmp_path / "comparison.md").read_text()
    assert f"not compared, {TASK}/accuracy: its mean over" in text and "metrics.json says 0.45" in text
    assert set(paired_table(tmp_path)) == {"metric", f"{TASK}/pass@1"}


def test_runs_without_samples_keep_the_plain_table(tmp_path):
    base, gem = write_run(tmp_path / "base", BASE), write_run(tmp_path / "gem", GEM, "gem")
    (tmp_path / "gem" / "samples.jsonl").unlink()
    main([base, gem, "--out-dir", str(tmp_path)])
    assert "Paired" not in (tmp_path / "comparison.md").read_text()
    assert not (tmp_path / "paired.png").exists()
    with pytest.raises(ValueError, match="samples.jsonl"):
        main([base, gem, "--out-dir", str(tmp_path), "--baseline", "base"])


def test_an_archived_evaluation_rescores_the_same(tmp_path):
    from src.eval.reports.archive import archive_eval

    base, gem = write_run(tmp_path / "base", BASE), write_run(tmp_path / "gem", GEM, model="gem")
    archived = [str(archive_eval(run, tmp_path / "archive" / name)) for run, name in ((base, "base"), (gem, "gem"))]
    assert not (tmp_path / "archive" / "gem" / "samples.jsonl").exists()
    first = (tmp_path / "archive" / "gem" / "samples.jsonl.gz").read_bytes()
    archive_eval(gem, tmp_path / "again")
    assert (tmp_path / "again" / "samples.jsonl.gz").read_bytes() == first  # no timestamp in the gzip header
    for runs, out in (([base, gem], "out"), (archived, "out_archived")):
        main([*runs, "--out-dir", str(tmp_path / out), "--resamples", "500", "--bootstrap-seed", "3"])
    assert paired_table(tmp_path / "out_archived") == paired_table(tmp_path / "out")
    assert f"{TASK}/accuracy" in paired_table(tmp_path / "out_archived")
    with pytest.raises(FileNotFoundError, match="no samples.jsonl"):
        archive_eval(tmp_path / "archive", tmp_path / "nowhere")


def test_a_studys_evaluations_are_archived_in_place(tmp_path):
    from src.eval.reports.archive import archive_all

    write_run(tmp_path / "runs" / "base" / "eval_gsm8k", BASE)
    run = tmp_path / "runs" / "gem"  # a training run whose final evaluation is <run>/eval/
    write_run(run / "tmp", GEM, model="gem")
    (run / "eval").mkdir()
    (run / "tmp" / "samples.jsonl").rename(run / "eval" / "samples.jsonl")
    (run / "tmp" / "metrics.json").rename(run / "metrics.json")
    (run / "tmp" / ".hydra").rename(run / ".hydra")
    archived = archive_all(tmp_path / "runs", tmp_path / "samples")
    assert archived == [tmp_path / "samples" / "base" / "eval_gsm8k", tmp_path / "samples" / "gem"]
    assert (tmp_path / "samples" / "gem" / "eval" / "samples.jsonl.gz").is_file()
    assert (tmp_path / "samples" / "gem" / "metrics.json").read_text() == (run / "metrics.json").read_text()
