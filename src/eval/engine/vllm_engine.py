"""Optional vLLM backend (``eval.engine=vllm``): the same prompts, ids and ``Sampling`` as the HF engine, on a GPU.

vLLM loads the model itself, from a Hugging Face directory (a run directory's ``hf/`` export) or a hub id. Prompts
are passed as token ids encoded exactly as the HF engine encodes them (one BOS), so both backends see the same
input. Never required: the default ``hf`` engine runs everywhere. Not exercised by CI (no GPU there).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from src.datamodules.encode import special_prefix, with_prefix
from src.eval.engine.hf_engine import Sample, Sampling


def generate_vllm(model_path: str | None, tokenizer: Any, prompts: list[tuple[Any, str]],
                  sampling: Sampling) -> dict[Any, list[Sample]]:
    try:
        from vllm import SamplingParams
    except ImportError:
        raise ImportError("eval.engine=vllm needs vLLM (pip install vllm, on a CUDA machine); the default "
                          "eval.engine=hf needs nothing more") from None
    params = SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                            top_k=sampling.top_k or -1, max_tokens=sampling.max_new_tokens,
                            stop=list(sampling.stop) if sampling.stop else None, seed=sampling.seed)
    prefix = special_prefix(tokenizer)
    inputs = [{"prompt_token_ids": with_prefix(tokenizer(text, add_special_tokens=False)["input_ids"], prefix)}
              for _, text in prompts]
    outputs = _engine(hf_directory(model_path)).generate(inputs, params)
    return {pid: [Sample(pid, i, c.text, len(c.token_ids), c.finish_reason == "length")
                  for i, c in enumerate(out.outputs)] for (pid, _), out in zip(prompts, outputs)}


def hf_directory(model_path: str | None) -> str:
    """The directory (or hub id) vLLM loads: a run directory means its ``hf/`` export."""
    if not model_path:
        raise ValueError("eval.engine=vllm loads the model itself: give model_path=<hf dir | run dir | hub id>")
    run_export = Path(model_path) / "hf"
    if (Path(model_path) / ".hydra").is_dir():
        if not (run_export / "config.json").is_file():
            raise FileNotFoundError(f"model_path={model_path}: eval.engine=vllm needs the run's hf/ export")
        return str(run_export)
    return model_path


@lru_cache(maxsize=1)
def _engine(path: str) -> Any:
    from vllm import LLM

    return LLM(model=path, seed=0)
