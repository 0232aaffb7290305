"""Strategy factories for what YAML cannot spell (a set of classes)."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from lightning.pytorch.strategies import FSDPStrategy


def fsdp(layer_classes: list[str], **kwargs: Any) -> FSDPStrategy:
    """``FSDPStrategy`` wrapping each of ``layer_classes`` (dotted paths) as its own shard unit."""
    return FSDPStrategy(auto_wrap_policy={get_class(path) for path in layer_classes}, **kwargs)
