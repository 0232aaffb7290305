"""eval.py's defaults that decide what a number means: the run's own prompt template, ``limit`` as a seeded
random subset (generated rows, files and eval=ppl's DataModule rows), and bad input named in one line with the key
the user sets."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import src.eval.tasks.task as task_base
from tests.helpers import ROOT, write_jsonl
from tests.integration.test_evaluate import read_samples, run_eval, train_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real ``train.py`` run of a tiny model (chat template, 16 validation rows); two steps are enough here."""
    return train_tiny_run(tmp_path_factory, steps=2)


@pytest.fixture
def alpaca_run(run_dir, tmp_path) -> Path:
    """The same run, its saved config saying it trained on Alpaca-style prompts."""
    run = shutil.copytree(run_dir, tmp_path / "alpaca_run")
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.data.template = "alpaca"
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    return run


@pytest.fixture
def prompts_seen(monkeypatch) -> list[str]:
    """Every prompt text the engine is asked to continue."""
    seen: list[str] = []
    generate = task_base.generate_samples

    def recording(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(text for _, text in prompts)
        return generate(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(task_base, "generate_samples", recording)
    return seen


TOY = ["eval=toyworld", "eval.num_prompts=3", "eval.generation.max_new_tokens=2"]


def test_a_run_trained_on_alpaca_is_prompted_in_alpaca(tmp_path, alpaca_run, prompts_seen, caplog):
    with caplog.at_level(logging.INFO):
        run_eval([*TOY, f"model_path={alpaca_run}"], tmp_path)
    assert len(prompts_seen) == 3 and all(p.startswith("Below is an instruction") for p in prompts_seen)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prompt template:")]
    assert said == [f"prompt template: alpaca for toyworld (the training template: data.template=alpaca in "
                    f"{alpaca_run}/.hydra/config.yaml)"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "template" in r.getMessage()]
    assert said[0] in (tmp_path / "results.md").read_text()


def test_an_explicit_template_that_differs_from_the_runs_is_warned(tmp_path, alpaca_run, prompts_seen, caplog):
    with caplog.at_level(logging.INFO):
        run_eval([*TOY, f"model_path={alpaca_run}", "eval.template=chat"], tmp_path)
    assert all("<|user|>" in p for p in prompts_seen)  # the toy tokenizer's chat template, as asked
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("eval.template=chat differs from alpaca, the template the model was trained with")
               for w in warned), warned


def test_limit_takes_a_seeded_random_subset_of_a_files_rows(tmp_path):
    rows = [{"question": f"What is {i} + 1?", "answer": f"The answer is {i + 1}."} for i in range(20)]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": i, "response": r["answer"]} for i, r in enumerate(rows)])

    def ids(*extra: str) -> list[str]:
        run_eval(["eval=gsm8k", f"eval.path={data}", f"predictions={predictions}", *extra], tmp_path / "out")
        return sorted({r["id"] for r in read_samples(tmp_path / "out")}, key=int)

    picked = ids("limit=5")
    assert len(picked) == 5 and picked != ["0", "1", "2", "3", "4"]
    assert ids("limit=5") == picked and ids("limit=5", "limit_seed=1") != picked
    assert ids("limit=50") == [str(i) for i in range(20)]  # N >= size: every row


def test_limit_on_perplexity_scores_a_random_subset_of_the_validation_rows(tmp_path, run_dir):
    ppl = lambda *extra: run_eval(["eval=ppl", f"model_path={run_dir}", "eval.data.num_train=64",
                                   "eval.data.num_val=16", *extra], tmp_path)
    every, subset = ppl(), ppl("limit=4")
    assert subset["ppl/sequences"] == 4 and every["ppl/sequences"] == 16
    assert ppl("limit=4")["ppl/nll"] == subset["ppl/nll"]  # seeded
    assert ppl("limit=4", "limit_seed=1")["ppl/nll"] != subset["ppl/nll"]
    assert ppl("eval.data.val_limit=4")["ppl/nll"] != subset["ppl/nll"]  # the DataModule's own limit: its head
    assert ppl("limit=16")["ppl/nll"] == pytest.approx(every["ppl/nll"])


def test_a_missing_model_path_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "runs" / "typo"
    out = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"model_path={missing}", "progress=false",
                          f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    line = (f"FileNotFoundError: model_path={missing} does not exist; expected a train.py run directory, a Hugging "
            "Face model directory, a LoRA adapter directory, or a hub id (org/name)\n")
    assert out.returncode != 0 and line in out.stderr, out.stderr[-3000:]


def test_a_datamodule_error_under_eval_names_the_eval_key(tmp_path, run_dir):
    rows = [{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(6)]
    data = tmp_path / "six.json"
    data.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"eval\.data\.val_size") as err:  # raised while the task runs
        run_eval(["eval=ppl", "data@eval.data=alpaca", f"eval.data.path={data}", "eval.data.val_size=50",
                  f"model_path={run_dir}"], tmp_path)
    assert not re.search(r"(?<![\w.])data\.", str(err.value)), err.value  # every key under eval.
    assert "\n" not in str(err.value)
