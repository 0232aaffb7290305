"""Load the model to evaluate from a ``train.py`` run directory, a Hugging Face directory, a LoRA adapter, or a hub id.

- run directory: its ``hf/`` export if there is one, else ``checkpoints/last.ckpt`` rebuilt from the run's own config
  (``.hydra/config.yaml``: the same tokenizer and backbone, then the checkpoint's weights);
- a directory with ``adapter_config.json``: the adapter on its base model (``base_model_path``, or the base the
  adapter names);
- anything else: ``AutoModelForCausalLM.from_pretrained`` (a local directory or a hub id).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from src.modules.backbones import DTYPES

log = logging.getLogger(__name__)


def load_model(model_path: str, dtype: str = "auto", device: str = "auto",
               base_model_path: str | None = None) -> tuple[Any, Any]:
    """``(model in eval mode on device, tokenizer)``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not a valid choice: expected one of {list(DTYPES)}")
    path = Path(model_path).expanduser()
    if (path / ".hydra" / "config.yaml").is_file():
        model, tokenizer = _from_run(path, dtype)
    elif (path / "adapter_config.json").is_file():
        model, tokenizer = _from_adapter(path, dtype, base_model_path)
    else:
        if path.is_dir() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"model_path={model_path}: not a run directory (no .hydra/config.yaml), a Hugging "
                                    "Face model directory (no config.json) or a LoRA adapter (no adapter_config.json)")
        if not path.is_dir():
            _require_hub_id(model_path, path)
        try:
            model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=DTYPES[dtype])
            tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        except OSError as err:
            if path.is_dir():
                raise
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OSError(f"model_path={model_path}: no such directory, and no hub model by that id ({reason}); "
                          f"{ACCEPTS}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


ACCEPTS = ("expected a train.py run directory, a Hugging Face model directory, a LoRA adapter directory, or a hub id "
           "(org/name)")


def _require_hub_id(model_path: str, path: Path) -> None:
    """Fail at once on what can only be a local path (a file, an absolute or dotted path, a missing folder below an
    existing one such as ``logs/typo``), instead of a hub lookup that retries for a minute offline."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if path.is_file():
        raise FileNotFoundError(f"model_path={model_path} is a file; {ACCEPTS}")
    try:
        validate_repo_id(model_path)
        hub_id = not model_path.startswith((".", "~")) and not (len(path.parts) > 1 and path.parent.is_dir())
    except HFValidationError:
        hub_id = False
    if not hub_id:
        raise FileNotFoundError(f"model_path={model_path} does not exist; {ACCEPTS}")


def _from_run(run: Path, dtype: str) -> tuple[Any, Any]:
    if (run / "hf" / "config.json").is_file():
        log.info("model_path=%s: loading its Hugging Face export hf/", run)
        return load_model(str(run / "hf"), dtype, device="cpu")
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.exists():  # a file, or trainer=fsdp2's directory of shards
        raise FileNotFoundError(f"model_path={run}: the run has neither hf/ (the export) nor checkpoints/last.ckpt")
    log.info("model_path=%s: no hf/ export, rebuilding the backbone from its config and %s", run, ckpt)
    from omegaconf import OmegaConf

    from src.modules.checkpoints import backbone_from_config, load_backbone_weights

    model, tokenizer = backbone_from_config(OmegaConf.load(run / ".hydra" / "config.yaml"))
    load_backbone_weights(model, ckpt)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model, tokenizer


def _from_adapter(path: Path, dtype: str, base_model_path: str | None) -> tuple[Any, Any]:
    from peft import PeftConfig, PeftModel

    base = base_model_path or PeftConfig.from_pretrained(str(path)).base_model_name_or_path
    if not base:
        raise ValueError(f"model_path={path} is a LoRA adapter that names no base model; set base_model_path=")
    log.info("model_path=%s: LoRA adapter on base model %s", path, base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=DTYPES[dtype])
    tokenizer_dir = path if (path / "tokenizer_config.json").is_file() else base
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return PeftModel.from_pretrained(model, str(path)).merge_and_unload(), tokenizer
