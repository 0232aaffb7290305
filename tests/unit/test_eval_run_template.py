"""The prompt template an evaluation uses: read from the run's saved config (each kind of DataModule), rendered into
the task's prompts, announced in one INFO line, and a warning naming both when a task's own template differs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.eval.run_template import announce, data_template, run_template
from src.eval.tasks.task import EvalContext
from src.eval.tasks.toyworld import ToyWorldTask
from tests.helpers import compose_cfg


def saved_run(tmp_path: Path, *overrides: str) -> Path:
    """A directory laid out like a ``train.py`` run: only ``.hydra/config.yaml``, composed with ``overrides``."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_cfg(list(overrides), tmp_path / "compose"), run / ".hydra" / "config.yaml")
    return run


@pytest.mark.parametrize(("overrides", "template", "why"), [
    ([], "chat", "data.template=chat"),  # the quickstart
    (["data.template=alpaca"], "alpaca", "data.template=alpaca"),
    (["data=alpaca"], "alpaca", "data.template=alpaca"),
    (["data=hh"], "hh", "data.template=raw"),  # HH's raw template is its Human:/Assistant: transcript
    (["data=ultrafeedback_sft"], "chat", "UltraFeedbackSFTDataModule"),
    (["data=wikitext"], "raw", "WikiTextDataModule"),
    (["data=toyworld_corpus"], "raw", "ToyWorldCorpusDataModule"),
    (["experiment=alright_toy"], "chat", "data.sft.template=chat"),  # interleaving: its SFT stream
])
def test_the_template_is_read_from_the_runs_saved_data_config(tmp_path, overrides, template, why):
    found = run_template(str(saved_run(tmp_path, *overrides)))
    assert found.name == template
    assert why in found.why and ".hydra/config.yaml" in found.why


def test_a_runs_hf_export_answers_for_its_run_and_a_plain_directory_has_none(tmp_path):
    run = saved_run(tmp_path, "data.template=alpaca")
    (run / "hf").mkdir()
    assert run_template(str(run / "hf")).name == "alpaca"
    plain = run_template(str(tmp_path / "compose"))
    assert plain.name is None and "not a train.py run" in plain.why


def test_a_datamodule_object_answers_like_its_config():
    assert data_template(ToyWorldSFTDataModule(template="alpaca", num_train=2, num_val=2)).name == "alpaca"


def rendered(task: ToyWorldTask, ctx: EvalContext) -> list[str]:
    return [task.prompt(row, ctx) for row in task.source_rows(ctx)]


def test_a_task_without_a_template_renders_as_the_run_trained(tmp_path, tokenizer):
    found = run_template(str(saved_run(tmp_path, "data.template=alpaca")))
    task = ToyWorldTask(num_prompts=3)
    prompts = rendered(task, EvalContext(tokenizer=tokenizer, template=found.name))
    assert all(p.startswith("Below is an instruction") and p.endswith("### Response:") for p in prompts)
    # The same task on a model with no known training template: the tokenizer's chat template, as before.
    chat = rendered(task, EvalContext(tokenizer=tokenizer))
    assert chat[0] == tokenizer.apply_chat_template([{"role": "user", "content": task.source_rows(None)[0][
        "question"]}], tokenize=False, add_generation_prompt=True)


def test_one_info_line_says_which_template_and_why(tmp_path, caplog):
    found = run_template(str(saved_run(tmp_path, "data.template=alpaca")))
    with caplog.at_level(logging.INFO, logger="src.eval.run_template"):
        text = announce({"toyworld": ToyWorldTask()}, found, {})
    assert [r.getMessage() for r in caplog.records] == [text]
    assert text.startswith("prompt template: alpaca for toyworld (the training template: data.template=alpaca in ")


def test_a_differing_explicit_template_is_warned_naming_both(tmp_path, caplog):
    found = run_template(str(saved_run(tmp_path, "data.template=alpaca")))
    tasks = {"toyworld": ToyWorldTask(template="chat"), "advbench": ToyWorldTask(name="advbench", template="alpaca")}
    nodes = {"toyworld": ("eval.tasks.toyworld", None), "advbench": ("eval.tasks.advbench", None)}
    with caplog.at_level(logging.INFO, logger="src.eval.run_template"):
        announce(tasks, found, nodes)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # advbench's own alpaca is the run's: no warning
    assert warnings[0].startswith("eval.tasks.toyworld.template=chat differs from alpaca, the template the model was "
                                  "trained with (data.template=alpaca in ")


def test_no_warning_without_a_training_template(caplog):
    found = run_template("HuggingFaceTB/SmolLM2-135M-Instruct")  # a hub id: the configured template, said
    with caplog.at_level(logging.INFO, logger="src.eval.run_template"):
        text = announce({"toyworld": ToyWorldTask(template="alpaca")}, found, {})
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert text == "prompt template: alpaca for toyworld (eval.template)"
