"""Shared test helpers: compose the real config, tiny overrides, and local stand-ins for hub data and models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.api import compose

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))

# A model and run small enough for a CPU test: a few seconds per experiment.
TINY = [
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.devices=1",
    "++callbacks.progress_bar=null",
    "logger=csv",
]
TINY_MODEL = ["++model.hidden_size=32", "++model.num_layers=2", "++model.num_heads=2"]


def compose_cfg(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """The composed ``<config_name>.yaml`` (train, evaluate, distill) with ``overrides``, writing under
    ``output_dir`` (logs and caches too); the Python API's own ``compose``."""
    paths = [f"paths.log_dir={output_dir}", f"paths.cache_dir={output_dir}/cache"]
    return compose(overrides + paths, config_name, output_dir)


# DataModule class -> the local asset (tests/conftest.py ``assets``) that stands in for its hub dataset.
DATA_ASSETS = {
    "AlpacaDataModule": "alpaca",
    "UltraFeedbackSFTDataModule": "ultrafeedback_sft",
    "UltraFeedbackPreferenceDataModule": "ultrafeedback_prefs",
    "HHPreferenceDataModule": "hh",
    "WikiTextDataModule": "wikitext",
}


def local_stand_ins(cfg: DictConfig, assets: dict) -> list[str]:
    """Overrides that run a hub/GPU recipe ``cfg`` on CPU: the saved tiny model, local data files, small sizes."""
    overrides = ["trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.devices=1",
                 "trainer.accumulate_grad_batches=1"]
    if cfg.model._target_.endswith("pretrained"):
        overrides += [f"model.name_or_path={assets['model']}", "model.dtype=float32",
                      "model.gradient_checkpointing=false", "model.attn_implementation=null"]
    if cfg.get("eval"):  # the paper suites read hub datasets; conf/eval is tested on its own
        overrides.append("~eval")
    if cfg.get("distill"):  # SDFT: distil the stand-in file, briefly
        overrides += [f"distill.path={assets['alpaca']}", "distill.subset=null", "distill.generation.max_new_tokens=8"]
    return overrides + _data_stand_ins(cfg.data, assets)


def _data_stand_ins(data: DictConfig, assets: dict, prefix: str = "data") -> list[str]:
    name = data._target_.rsplit(".", 1)[-1]
    overrides = []
    if name in DATA_ASSETS:  # a single local file: val_size of its rows are held out as validation
        overrides += [f"{prefix}.path={assets[DATA_ASSETS[name]]}", f"{prefix}.val_size=4"]
    overrides += [f"{prefix}.{key}={value}" for key, value in (("instruction_field", "instruction"),
                                                                 ("response_field", "output")) if key in data]
    overrides += [f"{prefix}.{key}={value}" for key, value in (("num_train", 32), ("num_val", 8)) if key in data]
    if data.get("tokenizer", "toy") != "toy":
        overrides.append(f"{prefix}.tokenizer={assets['model']}")
    # A multi-stream DataModule (interleave) nests one per stream. Unresolved: data.path may be ${distill.path}.
    for key, child in data.items_ex(resolve=False):
        if isinstance(child, DictConfig) and "_target_" in child:
            overrides += _data_stand_ins(child, assets, f"{prefix}.{key}")
    return overrides


def write_records(path: Path, records: list[dict]) -> Path:
    """``records`` as a JSON array (``.json``) or JSON lines (anything else)."""
    text = json.dumps(records) if path.suffix == ".json" else "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text)
    return path


def read_records(path: Path) -> list[dict]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def alpaca_rows(n: int = 24) -> list[dict]:
    rows = [{"instruction": f"Add {i} and {i + 1}.", "input": "" if i % 2 else f"numbers {i}, {i + 1}",
             "output": f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}."} for i in range(n)]
    return rows


def ultrafeedback_sft_rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        messages = [{"role": "user", "content": f"What is {i} + 1?"},
                    {"role": "assistant", "content": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}]
        if i % 3 == 0:  # multi-turn
            messages += [{"role": "user", "content": "And times two?"},
                         {"role": "assistant", "content": f"The answer is {2 * (i + 1)}."}]
        rows.append({"prompt": messages[0]["content"], "messages": messages})
    return rows


def ultrafeedback_pref_rows(n: int = 24) -> list[dict]:
    """UltraFeedback-binarized-style pairs: ``chosen`` / ``rejected`` message lists sharing the prompt turns."""
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"What is {i} + 1?"}]
        if i % 3 == 0:  # multi-turn: an earlier exchange is part of the shared prompt
            prompt = [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}] + prompt
        chosen = prompt + [{"role": "assistant", "content": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}]
        rejected = prompt + [{"role": "assistant", "content": f"{i} + 1 = {i + 2}. The answer is {i + 2}."}]
        rows.append({"prompt": prompt[-1]["content"], "chosen": chosen, "rejected": rejected,
                     "score_chosen": 9.0, "score_rejected": 2.0})
    return rows


def hh_rows(n: int = 24) -> list[dict]:
    """Anthropic-HH-style pairs: two transcripts that differ in the final Assistant turn only."""
    rows = []
    for i in range(n):
        history = f"\n\nHuman: Hi, I am {i}.\n\nAssistant: Hello {i}." if i % 3 == 0 else ""
        prompt = f"{history}\n\nHuman: What is {i} + 1?\n\nAssistant:"
        rows.append({"chosen": f"{prompt} {i} + 1 = {i + 1}. The answer is {i + 1}.",
                     "rejected": f"{prompt} I do not know."})
    return rows


def llama_style_tokenizer(toy: Any) -> Any:
    """The toy tokenizer made Llama-like: its post-processor puts ``<s>`` before every text and its chat template
    renders ``{{ bos_token }}`` too (as Llama-2/3 and Zephyr templates do), the setup that can encode two BOS."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(toy.backend_tokenizer.to_str())
    bos = toy.bos_token
    backend.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                special_tokens=[(bos, toy.bos_token_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=toy.eos_token,
                                        pad_token=toy.pad_token, unk_token=toy.unk_token)
    tokenizer.chat_template = "{{ bos_token }}" + toy.chat_template
    return tokenizer
