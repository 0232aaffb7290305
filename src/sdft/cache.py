"""Where a distillation is stored, and the keys that say when it can be reused.

Two levels: the *generations* depend on the seed model's weights, the template, the decoding settings (seed
included) and the input rows; the *dataset* also on the filters and the fallback. So changing a filter re-filters
the cached generations in a second, and changing anything that shapes a generation generates again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def weights_fingerprint(model: torch.nn.Module, sample: int = 4096) -> str:
    """A digest of every tensor's name, shape, dtype, float64 sum and a strided sample of ``sample`` values: cheap
    on a 7B model, and changed by any training step (a full hash would read every weight twice)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        picked = flat[:: max(1, flat.numel() // sample)][:sample].float().cpu()
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}{flat.double().sum().item():.10e}".encode())
        h.update(picked.numpy().tobytes())
    return h.hexdigest()[:16]


def write_text(path: Path, text: str) -> None:
    """Atomically: a killed writer leaves no half file behind (a shard is generated again, a dataset merged again)."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
