"""The SDFT stage (``src.sdft.stage.distill``): the join by id, the output schema, provenance and summary, the cache,
kill-and-resume, two processes against one, and ``train.py experiment=sdft_toy`` / ``distill.py`` through the CLI.

Most tests replace the engine's ``generate_samples`` with ``FakeGenerate`` (known texts keyed by id, returned in a
shuffled order), so the join, the filters and the cache are checked on exact values. The resume and DDP tests use
the real engine on a tiny random Llama, sampling at T=1, and compare whole files; the ``train.py`` test runs
``experiment=sdft_toy`` as configured, on the session's saved tiny model.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from src.configs import register_configs
from src.eval.engine.hf_engine import Sample, Sampling
from src.modules.backbones import tiny_llama
from src.sdft import stage
from src.sdft.distill_template import DistillTemplate
from src.sdft.filters import BanPhrases, Empty, MathAnswer, Truncated
from src.sdft.stage import distill
from tests.helpers import ROOT, compose_cfg, read_records, write_records

TEMPLATE = DistillTemplate(user="{instruction}", chat=True)
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK",
                   "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


class FakeGenerate:
    """Stands in for ``generate_samples``: ``texts[id]`` (default "The answer is <id>.") for each prompt, returned in a
    shuffled order, with ``truncated`` ids flagged; ids in ``drop`` get nothing. Records each call's ids and seed;
    raises on call number ``fail_on_call`` (a killed run). With ``engine``, that engine's samples come back instead."""

    def __init__(self, texts=None, truncated=(), drop=(), fail_on_call=None, engine=None):
        self.texts, self.truncated, self.drop, self.fail_on_call = texts or {}, set(truncated), set(drop), fail_on_call
        self.engine = engine
        self.calls: list[tuple[list[str], int]] = []
        self.prompts: dict[str, str] = {}

    def __call__(self, model, tokenizer, prompts, sampling):
        self.calls.append(([pid for pid, _ in prompts], sampling.seed))
        if self.fail_on_call == len(self.calls):
            raise RuntimeError("killed")
        self.prompts.update(prompts)
        if self.engine:
            return self.engine(model, tokenizer, prompts, sampling)
        ids = [pid for pid, _ in prompts if pid not in self.drop]
        random.Random(len(self.calls)).shuffle(ids)
        text = lambda pid: self.texts.get(pid, f"The answer is {pid}.")
        return {pid: [Sample(pid, 0, text(pid), len(text(pid).split()), pid in self.truncated)] for pid in ids}


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2)


@pytest.fixture
def fake(monkeypatch):
    generate = FakeGenerate()
    monkeypatch.setattr(stage, "generate_samples", generate)
    return generate


def rows(n: int = 12) -> list[dict]:
    return [{"id": f"r{i:02d}", "instruction": f"What is {i} times 3?", "input": "",
             "output": f"{i} times 3 is {3 * i}. The answer is {3 * i}.", "meta": {"source": "hand", "n": i}}
            for i in range(n)]


def run(model, tokenizer, path, cache_dir, **settings) -> Path:
    settings = {"template": TEMPLATE, "generation": Sampling(temperature=1.0, max_new_tokens=8), "shard_size": 4,
                **settings}
    return distill(model, tokenizer, str(path), cache_dir=str(cache_dir), **settings)


# The join by id

def test_each_row_gets_its_own_generation_whatever_order_they_come_back(tmp_path, model, tokenizer, fake):
    fake.texts = {f"r{i:02d}": f"Row {i}: the answer is {3 * i}." for i in range(12)}
    target = run(model, tokenizer, write_records(tmp_path / "d.json", rows()), tmp_path)
    assert [r["output"] for r in read_records(target)] == [f"Row {i}: the answer is {3 * i}." for i in range(12)]
    assert [ids for ids, _ in fake.calls] == [[f"r{i:02d}" for i in range(s, s + 4)] for s in (0, 4, 8)]


def test_rows_without_ids_are_joined_by_their_index(tmp_path, model, tokenizer, fake):
    plain = [{k: v for k, v in r.items() if k != "id"} for r in rows(6)]
    fake.texts = {str(i): f"Generated {i}." for i in range(6)}
    target = run(model, tokenizer, write_records(tmp_path / "d.jsonl", plain), tmp_path)
    assert [r["output"] for r in read_records(target)] == [f"Generated {i}." for i in range(6)]


def test_a_missing_generation_is_an_error_naming_the_id(tmp_path, model, tokenizer, fake):
    # Today a row whose generation is missing stops the merge (no silent fallback to the original).
    fake.drop = {"r05"}
    with pytest.raises(RuntimeError, match=r"no generation for 1 rows .*'r05'"):
        run(model, tokenizer, write_records(tmp_path / "d.json", rows()), tmp_path)


def test_shard_i_is_sampled_with_seed_plus_i(tmp_path, model, tokenizer, fake):
    run(model, tokenizer, write_records(tmp_path / "d.json", rows(10)), tmp_path,
        generation=Sampling(temperature=1.0, max_new_tokens=8, seed=5))
    assert [seed for _, seed in fake.calls] == [5, 6, 7]


# The output file, provenance and summary

@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_output_keeps_the_schema_and_order_and_replaces_only_kept_responses(tmp_path, model, tokenizer, fake,
                                                                             suffix):
    data = rows(8)
    fake.texts = {f"r{i:02d}": (f"As the reference answer says, {3 * i}." if i % 3 == 0 else f"It is {3 * i}.")
                  for i in range(8)}
    target = run(model, tokenizer, write_records(tmp_path / f"d{suffix}", data), tmp_path,
                 filters={"ban_phrases": BanPhrases()})
    assert target.suffix == suffix
    out = read_records(target)
    assert [list(r) for r in out] == [list(r) for r in data]  # same keys, same order
    for i, (before, after) in enumerate(zip(data, out)):
        assert {k: v for k, v in after.items() if k != "output"} == {k: v for k, v in before.items() if k != "output"}
        assert after["output"] == (before["output"] if i % 3 == 0 else f"It is {3 * i}.")


def test_fallback_drop_drops_the_rejected_rows(tmp_path, model, tokenizer, fake):
    fake.texts = {"r01": "Your turn: 3?", "r04": "my response is 12"}
    target = run(model, tokenizer, write_records(tmp_path / "d.json", rows(6)), tmp_path,
                 filters={"ban_phrases": BanPhrases()}, fallback="drop")
    assert [r["id"] for r in read_records(target)] == ["r00", "r02", "r03", "r05"]
    summary = json.loads(target.with_name(target.stem + ".summary.json").read_text())
    assert (summary["rows"], summary["rows_written"], summary["replaced"]) == (6, 4, 4)


def test_provenance_and_summary_on_hand_made_rows(tmp_path, model, tokenizer, fake):
    data = [{"id": i, "instruction": f"Q{i}", "output": gold} for i, gold in enumerate(["ab", "abcd", "abcdef", "x"])]
    fake.texts = {"0": "  The answer is 3.  ", "1": "The reference answer is 6.", "2": "Your response: 9 and",
                  "3": " \n "}
    fake.truncated = {"2"}
    filters = {"empty": Empty(), "truncated": Truncated(), "ban_phrases": BanPhrases()}  # the first rejecting counts
    target = run(model, tokenizer, write_records(tmp_path / "d.json", data), tmp_path, filters=filters)
    provenance = read_records(target.with_name(target.stem + ".provenance.jsonl"))
    assert provenance == [
        {"id": "0", "original": "ab", "generated": "The answer is 3.", "kept": "generated", "rejected_by": None,
         "num_tokens": 4, "truncated": False},
        {"id": "1", "original": "abcd", "generated": "The reference answer is 6.", "kept": "original",
         "rejected_by": "ban_phrases", "num_tokens": 5, "truncated": False},
        {"id": "2", "original": "abcdef", "generated": "Your response: 9 and", "kept": "original",
         "rejected_by": "truncated", "num_tokens": 4, "truncated": True},
        {"id": "3", "original": "x", "generated": "", "kept": "original", "rejected_by": "empty", "num_tokens": 0,
         "truncated": False},
    ]
    summary = json.loads(target.with_name(target.stem + ".summary.json").read_text())
    assert summary["rows"] == summary["rows_written"] == 4
    assert (summary["replaced"], summary["replaced_fraction"]) == (1, 0.25)
    assert summary["rejections"] == {"empty": 1, "truncated": 1, "ban_phrases": 1}
    assert summary["mean_chars_before"] == (2 + 4 + 6 + 1) / 4
    assert summary["mean_chars_generated"] == (16 + 26 + 20 + 0) / 4
    assert summary["mean_chars_after"] == (16 + 4 + 6 + 1) / 4
    assert [r["output"] for r in read_records(target)] == ["The answer is 3.", "abcd", "abcdef", "x"]


# The cache

def gen_dirs(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir())


def test_a_second_call_reuses_the_file_without_generating(tmp_path, model, tokenizer, fake, caplog):
    path = write_records(tmp_path / "d.json", rows())
    first = run(model, tokenizer, path, tmp_path / "cache")
    assert len(fake.calls) == 3
    with caplog.at_level(logging.INFO, logger="src.sdft.stage"):
        second = run(model, tokenizer, path, tmp_path / "cache")
    assert second == first and len(fake.calls) == 3
    assert "reusing" in caplog.text


def perturbed(model):
    copy = deepcopy(model)
    with torch.no_grad():
        copy.model.layers[0].mlp.up_proj.weight[3, 7] += 0.5  # one weight of one matrix
    return copy


CHANGES = {  # one thing that shapes a generation, changed
    "template": lambda kw: {**kw, "template": DistillTemplate(user="{instruction}", system="Be brief.", chat=True)},
    "temperature": lambda kw: {**kw, "generation": Sampling(temperature=0.7, max_new_tokens=8)},
    "seed": lambda kw: {**kw, "generation": Sampling(temperature=1.0, max_new_tokens=8, seed=1)},
    "max_new_tokens": lambda kw: {**kw, "generation": Sampling(temperature=1.0, max_new_tokens=9)},
    "rows": lambda kw: {**kw, "path": write_records(kw["path"].with_name("e.json"), rows()[:11] + [{**rows()[11],
                                                                                           "output": "36."}])},
    "weights": lambda kw: {**kw, "model": perturbed(kw["model"])},
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_that_shapes_the_generations_generates_again(tmp_path, model, tokenizer, fake, change):
    kw = {"model": model, "path": write_records(tmp_path / "d.json", rows())}
    first = run(tokenizer=tokenizer, cache_dir=tmp_path / "cache", **kw)
    second = run(tokenizer=tokenizer, cache_dir=tmp_path / "cache", **CHANGES[change](kw))
    assert second.parent != first.parent and len(gen_dirs(tmp_path / "cache")) == 2
    assert len(fake.calls) == 6


def test_changing_only_the_filters_refilters_without_generating(tmp_path, model, tokenizer, fake):
    path = write_records(tmp_path / "d.json", rows())
    fake.texts = {f"r{i:02d}": "It is 9." if i == 3 else "It is 13." for i in range(12)}
    first = run(model, tokenizer, path, tmp_path / "cache")
    strict = run(model, tokenizer, path, tmp_path / "cache", filters={"math_answer": MathAnswer()})
    dropped = run(model, tokenizer, path, tmp_path / "cache", filters={"math_answer": MathAnswer()}, fallback="drop")
    assert len(fake.calls) == 3 and strict.parent == first.parent == dropped.parent
    assert len({first.name, strict.name, dropped.name}) == 3
    assert [r["output"] for r in read_records(strict)][3:5] == ["It is 9.", rows()[4]["output"]]
    assert [r["id"] for r in read_records(dropped)] == ["r03"]  # the only rewrite with the gold's last number


def test_force_generates_again(tmp_path, model, tokenizer, fake):
    path = write_records(tmp_path / "d.json", rows())
    first = run(model, tokenizer, path, tmp_path / "cache")
    fake.texts = {"r00": "Changed."}
    again = run(model, tokenizer, path, tmp_path / "cache", force=True)
    assert again == first and len(fake.calls) == 6
    assert read_records(again)[0]["output"] == "Changed."


def test_resuming_with_another_shard_size_does_not_mix_shards(tmp_path, model, tokenizer, fake):
    path = write_records(tmp_path / "d.json", rows())
    fake.fail_on_call = 2  # killed after shard 0 of 4 rows
    with pytest.raises(RuntimeError, match="killed"):
        run(model, tokenizer, path, tmp_path / "cache", shard_size=4)
    fake.fail_on_call = None
    target = run(model, tokenizer, path, tmp_path / "cache", shard_size=6)
    assert [r["output"] for r in read_records(target)] == [f"The answer is r{i:02d}." for i in range(12)]
    assert fake.calls[-2:] == [([f"r{i:02d}" for i in range(6)], 0), ([f"r{i:02d}" for i in range(6, 12)], 1)]


def test_a_merge_killed_before_its_summary_is_not_reused(tmp_path, model, tokenizer, fake, monkeypatch, caplog):
    path = write_records(tmp_path / "d.json", rows())
    real = stage.write_jsonl

    def dies_on_provenance(target, records):
        if target.name.endswith(".provenance.jsonl"):
            raise RuntimeError("killed")
        real(target, records)

    monkeypatch.setattr(stage, "write_jsonl", dies_on_provenance)
    with pytest.raises(RuntimeError, match="killed"):
        run(model, tokenizer, path, tmp_path / "cache")
    monkeypatch.setattr(stage, "write_jsonl", real)
    with caplog.at_level(logging.INFO, logger="src.sdft.stage"):
        target = run(model, tokenizer, path, tmp_path / "cache")
    assert "reusing" not in caplog.text and len(fake.calls) == 3  # merged again from the cached shards
    assert target.with_name(target.stem + ".summary.json").is_file()


def test_bad_fields_name_the_setting(tmp_path, model, tokenizer, fake):
    path = write_records(tmp_path / "d.json", rows(2))
    with pytest.raises(ValueError, match="distill.response_field='nope'"):
        run(model, tokenizer, path, tmp_path, response_field="nope")
    no_instruction = write_records(tmp_path / "e.json", [{"query": "Q", "output": "A"}])
    with pytest.raises(ValueError, match="instruction"):
        run(model, tokenizer, no_instruction, tmp_path)
    assert not fake.calls


# Kill and resume: shards already written are kept, and each shard's seed is its own

@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, model, tokenizer, monkeypatch):
    path = write_records(tmp_path / "d.json", rows(14))  # 4 shards, the last one short
    whole = run(model, tokenizer, path, tmp_path / "whole")
    real = stage.generate_samples
    monkeypatch.setattr(stage, "generate_samples", FakeGenerate(fail_on_call=3, engine=real))
    with pytest.raises(RuntimeError, match="killed"):
        run(model, tokenizer, path, tmp_path / "killed")
    shards = next((tmp_path / "killed").iterdir()) / "shards"
    assert sorted(p.name for p in shards.iterdir()) == ["000000.jsonl", "000001.jsonl"]
    resumed_calls = FakeGenerate(engine=real)
    monkeypatch.setattr(stage, "generate_samples", resumed_calls)
    resumed = run(model, tokenizer, path, tmp_path / "killed")
    assert [ids for ids, _ in resumed_calls.calls] == [[f"r{i:02d}" for i in range(8, 12)], ["r12", "r13"]]
    provenance = lambda target: target.with_name(target.stem + ".provenance.jsonl").read_text()
    assert resumed.read_text() == whole.read_text()
    assert provenance(resumed) == provenance(whole)
    assert len({p["generated"] for p in read_records(whole.with_name(whole.stem + ".provenance.jsonl"))}) > 10


# The CLI: distill.py and train.py

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV} | {"OMP_NUM_THREADS": "1"}


def distill_cli(overrides: list[str], out_dir: Path) -> Path:
    """``python distill.py <overrides>`` in this process (the composed config, then ``distill.run``)."""
    import importlib

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("distill", overrides=[*overrides, f"paths.output_dir={out_dir}"])
    GlobalHydra.instance().clear()
    return importlib.import_module("distill").run(cfg)


def toy_cli(data: Path, model_dir: Path, cache: Path) -> list[str]:
    return ["distill=toy", f"distill.path={data}", f"model_path={model_dir}", f"distill.cache_dir={cache}",
            "distill.shard_size=2", "distill.generation.max_new_tokens=8", "distill.generation.temperature=1.0",
            "distill.generation.top_p=1.0", "distill.generation.top_k=0", "cpu_threads=1"]


@pytest.mark.slow
def test_two_processes_write_the_same_file_as_one(tmp_path, assets):
    data = write_records(tmp_path / "d.json", rows(11))  # 6 shards of 2: rank 0 takes 0, 2, 4 and rank 1 takes 1, 3, 5
    one = distill_cli(toy_cli(data, assets["model"], tmp_path / "one"), tmp_path / "one_run")
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(ROOT / "distill.py"),
            *toy_cli(data, assets["model"], tmp_path / "two"), f"hydra.run.dir={tmp_path / 'two_run'}"]
    out = subprocess.run(args, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-5000:]
    two = tmp_path / "two" / one.relative_to(tmp_path / "one")  # the same key: same weights, template, rows
    assert two.read_text() == one.read_text()
    provenance = lambda target: target.with_name(target.stem + ".provenance.jsonl").read_text()
    assert provenance(two) == provenance(one)
    assert json.loads((tmp_path / "two_run" / "summary.json").read_text())["rows"] == 11
    log = (tmp_path / "two_run" / "distill.log").read_text()  # both ranks log here: each shard once, so split
    assert sorted(re.findall(r"distill: shard (\d+) \(", log)) == list("012345")


def test_distill_cli_names_the_setting_behind_bad_input(tmp_path, assets):
    cli = lambda data, *extra: distill_cli([*toy_cli(data, assets["model"], tmp_path / "c"), *extra], tmp_path)
    no_response = write_records(tmp_path / "a.json", [{"instruction": "Q", "completion": "A"}])
    with pytest.raises(ValueError, match="distill.response_field"):
        cli(no_response)
    repeated = write_records(tmp_path / "b.json", [{"id": 1, "instruction": "Q", "output": "A"}] * 2)
    with pytest.raises(ValueError, match="row ids repeat"):
        cli(repeated)
    with pytest.raises(ValueError, match="distill.fallback='x'"):
        cli(write_records(tmp_path / "c.json", rows(2)), "distill.fallback=x")


SDFT_TOY = ["experiment=sdft_toy", "trainer.max_steps=4", "distill.generation.max_new_tokens=16", "cpu_threads=1",
            "callbacks.hf_export=null", "callbacks.progress_bar=null"]


@pytest.mark.slow
def test_train_sdft_toy_distils_then_trains_and_reuses_the_distillation(tmp_path, assets, caplog):
    run_dir = tmp_path / "first"
    settings = [*SDFT_TOY, "model=pretrained", f"model.name_or_path={assets['model']}",
                f"distill.cache_dir={tmp_path / 'cache'}"]
    args = [sys.executable, str(ROOT / "train.py"), *settings, f"hydra.run.dir={run_dir}"]
    out = subprocess.run(args, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-5000:]
    summary = json.loads((run_dir / "distill" / "summary.json").read_text())
    assert summary["rows"] == 400 and Path(summary["output"]).is_relative_to(tmp_path / "cache")
    assert "val/ce" in json.loads((run_dir / "metrics.json").read_text())
    assert "reusing" not in (run_dir / "train.log").read_text()
    # The same settings again (in this process, to spare a second start-up): the distilled file is reused.
    import train

    with caplog.at_level(logging.INFO, logger="src.sdft.stage"):
        train.train(compose_cfg(settings, tmp_path / "second"))
    assert "reusing" in caplog.text and "shard 0" not in caplog.text
    assert json.loads((tmp_path / "second" / "distill" / "summary.json").read_text()) == summary


def test_rows_with_different_keys_and_integer_values_come_back_as_written(tmp_path, monkeypatch):
    """A local file is read as written: no None-filled keys from other rows, integers stay integers."""
    import json

    from src.sdft.stage import read_rows

    rows = [{"instruction": "a", "output": "x", "n": 1}, {"instruction": "b", "output": "y", "extra": [1, 2]}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_rows(str(path), "train", None, None) == rows
    (tmp_path / "bad.json").write_text('[{"instruction": "a"}, 3]')
    with pytest.raises(ValueError, match="bad.json"):
        read_rows(str(tmp_path / "bad.json"), "train", None, None)
