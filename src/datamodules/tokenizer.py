"""Tokenizer construction from config: the local toy tokenizer, or any ``AutoTokenizer`` name or path."""

from __future__ import annotations

from typing import Any

from huggingface_hub.errors import HFValidationError
from transformers import AutoTokenizer

from src.datamodules.toy_tokenizer import toy_tokenizer


def load_tokenizer(name_or_path: str = "toy", chat_template: str | None = None, cache_dir: str | None = None) -> Any:
    """``"toy"`` builds the project's BPE; anything else goes to ``AutoTokenizer.from_pretrained``.

    A tokenizer without a pad token pads with its EOS (pads are masked out of the loss and attention).
    """
    if name_or_path == "toy":
        tokenizer = toy_tokenizer(cache_dir)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        except (OSError, HFValidationError) as err:  # offline hub id, a typo, a directory without tokenizer files
            reason = str(err).strip().splitlines()[0]
            raise FileNotFoundError(f"data.tokenizer={name_or_path}: cannot load a tokenizer from it ({reason}); "
                                    "give a local directory with tokenizer files, a hub id the machine can reach, "
                                    "or toy") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
