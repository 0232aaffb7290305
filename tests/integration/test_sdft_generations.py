"""SDFT with generations made elsewhere: ``distill.py generations=<jsonl>`` (``src.sdft.saved``).

A hand-made 6-row file and its generations (lines shuffled, ids as numbers or strings) give literal rows,
provenance and summary; each bad line is a one-line error naming the file, the line and the id; no model or
tokenizer is ever loaded; the same texts give the same files as the model stage; and the real CLI runs it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from src.eval.engine.hf_engine import Sample, Sampling
from src.modules.backbones import tiny_llama
from src.sdft import stage
from src.sdft.distill_template import DistillTemplate
from src.sdft.filters import BanPhrases, Empty, MathAnswer, Truncated
from src.sdft.saved import distill_saved
from tests.helpers import ROOT, compose_cfg, read_records, write_records

ROWS = [  # (id, gold); the gold's lengths are 32, 34, 32, 34, 34, 32 characters
    (10, "2 times 3 is 6. The answer is 6."),
    (11, "4 times 5 is 20. The answer is 20."),
    (12, "3 times 3 is 9. The answer is 9."),
    (13, "7 times 2 is 14. The answer is 14."),
    (14, "5 times 5 is 25. The answer is 25."),
    (15, "6 times 1 is 6. The answer is 6."),
]
# Shuffled lines; ids as the writer gave them. Generated lengths (stripped): 27, 0, 40, 29, 22, 27.
GENERATIONS = [
    {"id": "14", "response": "5 * 5 = 25. The answer", "truncated": True, "num_tokens": 9},  # truncated
    {"id": 12, "response": "Following the reference answer, it is 9.", "truncated": False},  # ban_phrases
    {"id": 10, "response": "2 * 3 = 6. The answer is 6.", "truncated": False, "num_tokens": 11},  # kept
    {"id": "15", "response": "  6 * 1 = 6. The answer is 6.\n", "truncated": False},  # kept, stripped
    {"id": 13, "response": "7 * 2 = 12. The answer is 12.", "truncated": False},  # math_answer: 12, not 14
    {"id": 11, "response": "", "truncated": False},  # empty: filtered, not an error
]
FILTERS = {"empty": Empty(), "truncated": Truncated(), "ban_phrases": BanPhrases(), "math_answer": MathAnswer()}


def rows(with_ids: bool = True) -> list[dict]:
    return [{**({"id": rid} if with_ids else {}), "instruction": f"Row {rid}: how much?", "output": gold,
             "meta": {"n": rid}} for rid, gold in ROWS]


def beside(target: Path, suffix: str) -> Path:
    return target.with_name(target.stem + suffix)


def saved(tmp_path, generations=GENERATIONS, records=None, **settings) -> Path:
    data = write_records(tmp_path / "d.json", records or rows())
    lines = write_records(tmp_path / "g.jsonl", generations)
    return distill_saved(str(lines), str(tmp_path / "out" / "distilled.json"), str(data),
                         **{"filters": FILTERS, **settings})


def test_rows_provenance_and_summary_on_hand_made_generations(tmp_path):
    target = saved(tmp_path)
    assert target == tmp_path / "out" / "distilled.json"
    golds = [gold for _, gold in ROWS]
    kept = {0: "2 * 3 = 6. The answer is 6.", 5: "6 * 1 = 6. The answer is 6."}
    assert read_records(target) == [{**row, "output": kept.get(i, golds[i])} for i, row in enumerate(rows())]
    assert [list(r) for r in read_records(target)] == [["id", "instruction", "output", "meta"]] * 6  # the input's keys
    prov = lambda rid, generated, rejected_by, tokens=None, truncated=False: {
        "id": rid, "original": golds[int(rid) - 10], "generated": generated,
        "kept": "original" if rejected_by else "generated", "rejected_by": rejected_by, "num_tokens": tokens,
        "truncated": truncated}
    assert read_records(beside(target, ".provenance.jsonl")) == [
        prov("10", "2 * 3 = 6. The answer is 6.", None, tokens=11),
        prov("11", "", "empty"),
        prov("12", "Following the reference answer, it is 9.", "ban_phrases"),
        prov("13", "7 * 2 = 12. The answer is 12.", "math_answer"),
        prov("14", "5 * 5 = 25. The answer", "truncated", tokens=9, truncated=True),  # the first rejecting filter
        prov("15", "6 * 1 = 6. The answer is 6.", None),
    ]
    assert json.loads(beside(target, ".summary.json").read_text()) == {
        "input": str(tmp_path / "d.json"), "output": str(target), "rows": 6, "rows_written": 6, "replaced": 2,
        "replaced_fraction": 2 / 6, "rejections": {"empty": 1, "truncated": 1, "ban_phrases": 1, "math_answer": 1},
        "fallback": "original",
        "mean_chars_before": (32 + 34 + 32 + 34 + 34 + 32) / 6,
        "mean_chars_generated": (27 + 0 + 40 + 29 + 22 + 27) / 6,
        "mean_chars_after": (27 + 34 + 32 + 34 + 34 + 27) / 6,
    }


def test_fallback_drop_keeps_only_the_replaced_rows(tmp_path):
    target = saved(tmp_path, fallback="drop")
    assert [(r["id"], r["output"]) for r in read_records(target)] == [(10, "2 * 3 = 6. The answer is 6."),
                                                               (15, "6 * 1 = 6. The answer is 6.")]
    summary = json.loads(beside(target, ".summary.json").read_text())
    assert (summary["rows"], summary["rows_written"], summary["replaced"]) == (6, 2, 2)


def test_rows_without_ids_join_by_index_and_no_truncated_field_skips_that_filter(tmp_path, caplog):
    lines = [{"id": str(i) if i % 2 else i, "response": f"Line {i}. The answer is {6 * i}."} for i in range(6)]
    with caplog.at_level(logging.INFO, logger="src.sdft.saved"):
        target = saved(tmp_path, generations=lines[::-1], records=rows(with_ids=False),
                       filters={"empty": Empty(), "truncated": Truncated()})
    assert [r["output"] for r in read_records(target)] == [f"Line {i}. The answer is {6 * i}." for i in range(6)]
    assert 'no "truncated" field, so the truncated filter is skipped' in caplog.text
    summary = json.loads(beside(target, ".summary.json").read_text())
    assert summary["rejections"] == {"empty": 0}  # truncated did not run, so it rejected nothing either way
    provenance = read_records(beside(target, ".provenance.jsonl"))
    assert {(p["num_tokens"], p["truncated"]) for p in provenance} == {(None, None)}


def test_with_limit_lines_for_rows_past_it_are_ignored(tmp_path):
    target = saved(tmp_path, limit=2)
    assert [r["id"] for r in read_records(target)] == [10, 11]


def line(i: int, **fields) -> str:
    return json.dumps({**GENERATIONS[i], **fields})


GOOD = [json.dumps(g) for g in GENERATIONS]
BAD = {  # the file's lines -> its error (<G>: the generations file, <D>: the rows file)
    "not json": (GOOD[:2] + ['{"id": 10, "response": "x"'] + GOOD[3:],
                 "generations=<G> line 3: not valid JSON (Expecting ',' delimiter)"),
    "no id": (GOOD[:1] + ['{"response": "x"}'] + GOOD[1:],
              'generations=<G> line 2: expected an object with "id" and "response"'),
    "not an object": (GOOD + ['["x"]'], 'generations=<G> line 7: expected an object with "id" and "response"'),
    "no response": (GOOD[:3] + ['{"id": 15, "text": "x", "truncated": false}'] + GOOD[4:],
                    "generations=<G> line 4, id '15': no \"response\" string (an empty string is filtered, not an "
                    "error)"),
    "response not a string": (GOOD[:3] + [line(3, response=["x"])] + GOOD[4:],
                              "generations=<G> line 4, id '15': no \"response\" string (an empty string is filtered, "
                              "not an error)"),
    "repeated id": (GOOD + [line(2, id="10")],
                    "generations=<G> line 7, id '10': the id appears twice (first on line 3)"),
    "extra id": (GOOD[:5] + [line(5, id=99)] + GOOD[5:],
                 "generations=<G> line 6, id '99': no row of distill.path=<D> has this id (a row's id is its \"id\" "
                 "field, else its index)"),
    "missing id": (GOOD[:3] + GOOD[4:],
                   "generations=<G>: no generation for 1 rows of distill.path=<D>, e.g. ids ['15']"),
    "truncated on some lines": (GOOD[:4] + [json.dumps({"id": 13, "response": "x"})] + GOOD[5:],
                                "generations=<G> line 5, id '13': no \"truncated\", which line 1 has; give it on every "
                                "line or on none"),
    "truncated not a bool": (GOOD[:1] + [line(1, truncated="no")] + GOOD[2:],
                             "generations=<G> line 2, id '12': \"truncated\" must be true or false, got 'no'"),
    "num_tokens not an integer": (GOOD[:1] + [line(1, num_tokens=2.5)] + GOOD[2:],
                                  "generations=<G> line 2, id '12': \"num_tokens\" must be an integer, got 2.5"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_line_is_a_one_line_error_naming_file_line_and_id(tmp_path, case):
    lines, message = BAD[case]
    data = write_records(tmp_path / "d.json", rows())
    (tmp_path / "g.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        distill_saved(str(tmp_path / "g.jsonl"), str(tmp_path / "o.json"), str(data), filters=FILTERS)
    assert str(err.value) == message.replace("<G>", str(tmp_path / "g.jsonl")).replace("<D>", str(data))
    assert not (tmp_path / "o.json").exists()


def test_bad_files_and_outputs_are_named(tmp_path):
    data = write_records(tmp_path / "d.json", rows())
    lines = write_records(tmp_path / "g.jsonl", GENERATIONS)
    with pytest.raises(FileNotFoundError, match=r"^generations=.*nope\.jsonl: no such file$"):
        distill_saved(str(tmp_path / "nope.jsonl"), str(tmp_path / "o.json"), str(data))
    with pytest.raises(ValueError, match=r"^output=.*o\.csv: expected a \.json or \.jsonl file"):
        distill_saved(str(lines), str(tmp_path / "o.csv"), str(data))
    with pytest.raises(ValueError, match=r"is distill\.path itself"):
        distill_saved(str(lines), str(data), str(data))
    with pytest.raises(ValueError, match="distill.fallback='x'"):
        distill_saved(str(lines), str(tmp_path / "o.json"), str(data), fallback="x")


# The same texts from a model or from a file: the same files (one merge, two sources)

def test_saved_generations_write_what_the_model_stage_writes_for_the_same_texts(tmp_path, tokenizer, monkeypatch):
    texts = {str(g["id"]): g["response"] for g in GENERATIONS}
    flags = {str(g["id"]): (g.get("num_tokens"), g["truncated"]) for g in GENERATIONS}

    def generate(model, tok, prompts, sampling):
        return {pid: [Sample(pid, 0, texts[pid], *flags[pid])] for pid, _ in prompts}

    monkeypatch.setattr(stage, "generate_samples", generate)
    data = write_records(tmp_path / "d.json", rows())
    from_model = stage.distill(tiny_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2), tokenizer, str(data),
                               DistillTemplate(user="{instruction}", chat=True), str(tmp_path / "cache"),
                               generation=Sampling(max_new_tokens=8), filters=FILTERS)
    from_file = saved(tmp_path)
    assert from_file.read_text() == from_model.read_text()
    assert beside(from_file, ".provenance.jsonl").read_text() == beside(from_model, ".provenance.jsonl").read_text()
    summary = lambda target: {k: v for k, v in json.loads(beside(target, ".summary.json").read_text()).items()
                              if k != "output"}
    assert summary(from_file) == summary(from_model)


# distill.py: no model, no tokenizer; which source to use

def distill_run(tmp_path, *overrides):
    cfg = compose_cfg(["distill=toy", *overrides], tmp_path / "run", "distill")
    return importlib.import_module("distill").run(cfg)


def test_distill_py_loads_no_model_and_no_tokenizer(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("generations= mode loaded a model or a tokenizer")

    import distill
    import src.datamodules.tokenizer
    import src.eval.engine.models

    for owner, name in [(distill, "load_model"), (src.eval.engine.models, "load_model"),
                        (src.datamodules.tokenizer, "load_tokenizer"),
                        (transformers.AutoModelForCausalLM, "from_pretrained"),
                        (transformers.AutoTokenizer, "from_pretrained"),
                        (transformers.PreTrainedModel, "from_pretrained")]:
        monkeypatch.setattr(owner, name, refuse)
    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)  # nor builds one from scratch
    data = write_records(tmp_path / "d.json", rows())
    lines = write_records(tmp_path / "g.jsonl", GENERATIONS)
    target = distill_run(tmp_path, f"distill.path={data}", f"generations={lines}")
    assert target == tmp_path / "run" / "distilled.json"  # no output=: the run directory
    assert [r["output"] for r in read_records(target)][0] == "2 * 3 = 6. The answer is 6."
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["replaced"] == 2


@pytest.mark.parametrize("overrides, message", [
    ([], r"^distill\.py needs model_path= \(a seed model generates the rewrites\) or generations="),
    (["model_path=m", "generations=g.jsonl"], r"^give model_path= .* or generations= .*, not both$"),
    (["model_path=m", "output=o.json"], r"^output= is where generations= mode writes"),
])
def test_distill_py_needs_exactly_one_source(tmp_path, overrides, message):
    data = write_records(tmp_path / "d.json", rows())
    with pytest.raises(ValueError, match=message):
        distill_run(tmp_path, f"distill.path={data}", *overrides)


def test_the_cli_distils_saved_generations_into_output(tmp_path):
    data = write_records(tmp_path / "d.jsonl", rows())
    lines = write_records(tmp_path / "g.jsonl", GENERATIONS)
    output = tmp_path / "made" / "distilled.jsonl"
    args = [sys.executable, str(ROOT / "distill.py"), "distill=toy", f"distill.path={data}", f"generations={lines}",
            f"output={output}"]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-5000:]
    assert f"distilled dataset: {output}" in out.stderr + out.stdout
    # distill=toy filters empty, truncated and math_answer (toyworld: the word after "The answer is").
    assert [r["output"] for r in read_records(output)] == ["2 * 3 = 6. The answer is 6.", ROWS[1][1], ROWS[2][1],
                                                           ROWS[3][1], ROWS[4][1], "6 * 1 = 6. The answer is 6."]
    summary = json.loads(beside(output, ".summary.json").read_text())
    assert summary["rejections"] == {"empty": 1, "truncated": 1, "math_answer": 2}
    assert (summary["replaced"], summary["rows_written"]) == (2, 6)
    assert beside(output, ".provenance.jsonl").is_file()
    run_dirs = list((tmp_path / "logs" / "distill" / "runs" / "toy").iterdir())
    assert len(run_dirs) == 1 and json.loads((run_dirs[0] / "summary.json").read_text()) == summary
