from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import alpaca_rows, hh_rows, ultrafeedback_pref_rows, ultrafeedback_sft_rows, write_jsonl

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
torch.set_num_threads(1)  # tiny models: one thread is fastest, and 2-core CI machines are often shared


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer():
    from src.datamodules.tokenizer import load_tokenizer

    return load_tokenizer("toy")


@pytest.fixture(scope="session")
def assets(tmp_path_factory, tokenizer) -> dict[str, Path]:
    """Local stand-ins for hub data and a saved pretrained model, written once per session."""
    from src.modules.backbones import tiny_llama

    root = tmp_path_factory.mktemp("assets")
    model_dir = root / "tiny-llama"
    tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return {
        "model": model_dir,
        "alpaca": write_jsonl(root / "alpaca.jsonl", alpaca_rows()),
        "ultrafeedback_sft": write_jsonl(root / "ultrafeedback_sft.jsonl", ultrafeedback_sft_rows()),
        "wikitext": write_wikitext(root / "wikitext.txt"),
        "ultrafeedback_prefs": write_jsonl(root / "ultrafeedback_prefs.jsonl", ultrafeedback_pref_rows()),
        "hh": write_jsonl(root / "hh.jsonl", hh_rows()),
    }


def write_wikitext(path: Path, articles: int = 6) -> Path:
    """Raw WikiText-style lines: headings, paragraphs and blank lines; its last 4 lines hold > 256 toy tokens."""
    lines = []
    for a in range(articles):
        sentence = "says the cat , the dog and the moon met at the lake ."
        body = " ".join(f"Article {a} sentence {s} {sentence}" for s in range(12))
        lines += ["\n", f" = Article {a} = \n", "\n", f" {body} \n", "\n", f" {body} \n"]
    path.write_text("".join(lines))
    return path
