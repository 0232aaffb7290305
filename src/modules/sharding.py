"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for a LightningModule's backbones, under ModelParallelStrategy.

Every *backbone* (the outermost submodule whose class names its decoder layers in Hugging Face's
``_no_split_modules``: the policy, peft-wrapped or not, and DPO's frozen reference copy) gets one FSDP unit per
decoder layer and one for the rest (embeddings, final norm, LM head), the torchtitan layout: a layer's weights are
all-gathered just before its forward and freed after. Nothing else is sharded: the EMO cost embedding, a buffer,
stays a full replicated tensor, and a precomputed reference table is not a module.

Outside forward and backward a sharded parameter is a ``DTensor`` (``Shard(0)`` over the data-parallel mesh); code
that reads a weight directly (the EMO ``adaptive`` cost, the fingerprint of a precomputed reference) takes
:func:`full_tensor`, a collective that every rank calls in the same order. Between a forward and its backward the
root unit (embeddings, head) stays unsharded (FSDP2's root default), so ``loss_impl=chunked`` reads the head weight as
a plain tensor, whose gradient FSDP2 reduce-scatters as usual (the policy's ``HiddenPath`` refuses a sharded one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.distributed.tensor import DTensor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ShardingSettings:
    """``trainer.strategy.*`` of ``trainer=fsdp2`` (``src.modules.strategies.FSDP2Strategy``), checked here.

    ``param_dtype``/``reduce_dtype``: FSDP2's ``MixedPrecisionPolicy`` (``null``: no cast). The sharded parameters
    and the optimizer state stay in their own dtype (fp32 master weights); ``param_dtype=bfloat16`` all-gathers and
    computes in bf16, ``reduce_dtype=float32`` then reduce-scatters the gradients in fp32.
    ``activation_checkpointing``: recompute each decoder layer's activations in backward (torch's composable
    ``checkpoint`` on the layer, so parameter names do not change).
    """

    param_dtype: str | None = None
    reduce_dtype: str | None = None
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        for key in ("param_dtype", "reduce_dtype"):
            value = getattr(self, key)
            if value is not None and value not in DTYPES:
                raise ValueError(f"trainer.strategy.{key}={value!r} is not a valid choice: expected one of "
                                 f"{list(DTYPES)} or null (no cast)")

    def policy(self) -> torch.distributed.fsdp.MixedPrecisionPolicy:
        from torch.distributed.fsdp import MixedPrecisionPolicy

        return MixedPrecisionPolicy(param_dtype=DTYPES.get(self.param_dtype),
                                    reduce_dtype=DTYPES.get(self.reduce_dtype))


def decoder_layer_names(backbone: torch.nn.Module) -> set[str]:
    """The class names in ``_no_split_modules`` (``{"LlamaDecoderLayer"}``); peft forwards the attribute."""
    return set(getattr(backbone, "_no_split_modules", None) or ())


def find_backbones(root: torch.nn.Module) -> list[torch.nn.Module]:
    """The outermost submodules of ``root`` that declare decoder layers (never ``root`` itself, the LightningModule)."""
    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in root.named_modules():
        if name and decoder_layer_names(module) and not any(name.startswith(f"{outer}.") for outer, _ in found):
            found.append((name, module))
    return [module for _, module in found]


def shard_backbone(backbone: torch.nn.Module, mesh: torch.distributed.DeviceMesh, settings: ShardingSettings) -> int:
    """``fully_shard`` each decoder layer, then the backbone (the rest); returns the number of layers."""
    from torch.distributed._composable import checkpoint
    from torch.distributed.fsdp import fully_shard

    names = decoder_layer_names(backbone)
    layers = [m for m in backbone.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"FSDP2: {type(backbone).__name__} declares decoder layers {sorted(names)} in "
                         "_no_split_modules, but none is in the model")
    policy = settings.policy()
    for layer in layers:
        if settings.activation_checkpointing:
            checkpoint(layer)
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(backbone, mesh=mesh, mp_policy=policy)
    return len(layers)


def shard_module(root: torch.nn.Module, mesh: torch.distributed.DeviceMesh, settings: ShardingSettings) -> None:
    """Shard every backbone of ``root``; refuse a trainable parameter outside them, whose gradient no rank would
    reduce (FSDP2 has no DDP fallback), so ranks would silently drift apart."""
    backbones = find_backbones(root)
    if not backbones:
        raise ValueError(f"FSDP2: {type(root).__name__} has no submodule with _no_split_modules (a Hugging Face "
                         "PreTrainedModel); nothing to shard")
    for backbone in backbones:
        shard_backbone(backbone, mesh, settings)
    covered = {id(p) for backbone in backbones for p in backbone.parameters()}
    stray = [name for name, p in root.named_parameters() if p.requires_grad and id(p) not in covered]
    if stray:
        raise ValueError(f"FSDP2: trainable parameters outside any sharded backbone would not be reduced across "
                         f"ranks: {stray[:5]}")


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded ``DTensor`` (an all-gather: every rank must call it), else ``tensor``."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def gather_backbone(backbone: torch.nn.Module, build: Callable[[], torch.nn.Module],
                    rank: int) -> torch.nn.Module | None:
    """An unsharded CPU copy of a sharded ``backbone`` on rank 0 (``None`` elsewhere): every rank takes part in
    gathering the full state dict, then rank 0 loads it into a fresh ``build()`` (the same class, peft wrapper and
    config; it costs one more full model in rank 0's CPU memory)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(backbone, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank != 0:
        return None
    copy = build()
    copy.load_state_dict(full)
    return copy


def unsaved_parameters(root: torch.nn.Module) -> list[str]:
    """Parameters that ``root.state_dict()`` leaves out on purpose (a state-dict hook: DPO's frozen copy)."""
    saved = set(root.state_dict(keep_vars=True))
    return [name for name, _ in root.named_parameters() if name not in saved]
