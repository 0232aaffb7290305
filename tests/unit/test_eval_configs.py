"""Every option of ``conf/eval`` composes as ``python eval.py eval=<x> --cfg job`` does, resolves, and builds its
tasks; bad settings fail by name, at composition (unknown key) or at instantiation (out of range)."""

from __future__ import annotations

import functools

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from src.configs import register_configs
from src.eval.run import as_tasks
from src.utils.instantiate import instantiate
from tests.helpers import ROOT, compose_cfg

FILE_TASKS = ("openfunction", "diversity", "bleu")  # no public default: the user names the data file


@functools.cache
def eval_options() -> list[str]:
    """What ``eval=`` accepts: the generated task nodes and the YAML suites, as Hydra lists them."""
    register_configs()  # once per module: it is idempotent, and 0.4 s a call
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        options = GlobalHydra.instance().config_loader().get_group_options("eval")
    GlobalHydra.instance().clear()
    return options


def compose_eval(overrides: list[str], output_dir):
    return compose_cfg(overrides, output_dir, "evaluate")


def test_the_options_are_the_known_tasks_and_suites():
    known = {"gsm8k", "toyworld", "ppl", "lm_eval", "toy", "toy_sampling", "sdft", "gem", *FILE_TASKS}
    assert known <= set(eval_options())


@pytest.mark.parametrize("option", eval_options())
def test_every_option_composes_resolves_and_builds(option, tmp_path):
    cfg = compose_eval([f"eval={option}"], tmp_path)
    mandatory = sorted(OmegaConf.missing_keys(cfg))  # e.g. eval.path, eval.tasks.openfunction.path: data files
    assert all(key.startswith("eval.") and key.endswith(".path") for key in mandatory), mandatory
    if option in FILE_TASKS:
        assert mandatory == ["eval.path"]
    if mandatory:  # given as a user gives them
        cfg = compose_eval([f"eval={option}", *(f"{key}=x" for key in mandatory)], tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # nothing left ??? and every ${...} resolves
    tasks = as_tasks(instantiate(cfg.eval))
    # A suite's tasks are reported by name: two with one name would overwrite each other's metrics.
    assert len(tasks) == (len(cfg.eval.tasks) if "_target_" not in cfg.eval else 1)


def test_an_out_of_range_setting_names_the_key(tmp_path):
    cfg = compose_eval(["eval=gsm8k", "eval.generation.temperature=-1"], tmp_path)
    with pytest.raises(ValueError, match=r"generation\.temperature=-1"):
        instantiate(cfg.eval)


def test_an_unknown_key_fails_at_composition(tmp_path):
    with pytest.raises(ConfigCompositionException, match=r"eval\.nope"):
        compose_eval(["eval=gsm8k", "eval.nope=1"], tmp_path)


def test_a_suite_task_set_to_null_is_dropped(tmp_path):
    from src.eval.run import as_tasks

    cfg = compose_eval(["eval=sdft", "eval.tasks.lm_eval=null", "eval.tasks.gsm8k=null"], tmp_path)
    assert set(as_tasks(instantiate(cfg.eval))) == {"multiarith", "alpaca_eval", "advbench", "advbench_jailbreak"}
