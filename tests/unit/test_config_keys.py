"""Errors name the key the user sets: a DataModule or task placed below another node (data@eval.data, a suite's
eval.tasks.<name>, data.sft) has its ``data.<key>`` / ``eval.<key>`` renamed to where it is."""

from __future__ import annotations

import pytest

from src.eval.keys import named_at, task_nodes
from src.utils.checks import group_of, rekey, require
from src.utils.instantiate import instantiate
from tests.helpers import compose_cfg


def test_rekey_renames_only_the_nodes_own_keys():
    message = "data.path=data.json: set data.val_split=null to hold out data.val_size=200 (data.val_sizes: no key)"
    assert rekey(message, "data", "eval.data", ["path", "val_split", "val_size"]) == (
        "eval.data.path=data.json: set eval.data.val_split=null to hold out eval.data.val_size=200 "
        "(data.val_sizes: no key)")
    assert rekey(message, "data", "data", ["path"]) == message  # at its group's own place: unchanged
    assert rekey("eval.data.val_size=3", "data", "eval.data", ["val_size"]) == "eval.data.val_size=3"  # no repeat


@pytest.mark.parametrize(("key", "group"), [("eval.tasks.ppl.data", "data"), ("eval.data", "data"),
                                            ("eval.tasks.gsm8k", "eval"), ("data.sft", "data"), ("model", None)])
def test_group_of_a_node(key, group):
    assert group_of(key) == group


@pytest.mark.parametrize(("overrides", "message"), [
    (["eval=ppl", "eval.data.batch_size=0"], r"^eval\.data\.batch_size=0 is out of range"),
    (["eval.tasks.ppl.data.batch_size=0"], r"^eval\.tasks\.ppl\.data\.batch_size=0 is out of range"),
    (["eval.tasks.toyworld.limit=0"], r"^eval\.tasks\.toyworld\.limit=0 is out of range"),
    (["eval=toyworld", "eval.limit=0"], r"^eval\.limit=0 is out of range"),
])
def test_an_instantiation_error_names_the_key_where_the_node_is(tmp_path, overrides, message):
    cfg = compose_cfg(overrides, tmp_path, "evaluate")
    with pytest.raises(ValueError, match=message) as err:
        instantiate(cfg.eval)
    assert "\n" not in str(err.value)  # one line


def test_an_error_while_a_task_runs_names_its_keys(tmp_path):
    cfg = compose_cfg(["eval=ppl", "data@eval.data=alpaca"], tmp_path, "evaluate")
    (name, (at, node)), = task_nodes(cfg.eval).items()
    assert (name, at) == ("ppl", "eval")
    with pytest.raises(ValueError, match=r"^eval\.data\.val_size=500 is out of range"):
        with named_at(at, node):
            require(False, "data.val_size", 500, "fewer than the 6 rows of f.json")
    suite = task_nodes(compose_cfg([], tmp_path, "evaluate").eval)
    assert {name: at for name, (at, _) in suite.items()} == {"toyworld": "eval.tasks.toyworld", "ppl": "eval.tasks.ppl"}
    with pytest.raises(ValueError, match=r"^eval\.tasks\.toyworld\.path=x: no rows"):
        with named_at(*suite["toyworld"]):
            raise ValueError("eval.path=x: no rows")
