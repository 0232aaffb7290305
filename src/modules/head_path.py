"""The LM-head path: how a batch's logits (or what replaces them) leave the backbone, chosen once per run.

``module.loss_impl`` names a path; ``PostTrainModule.configure_model`` resolves ``auto`` and builds it with
:func:`head_path`. Each path runs the backbone's forward and returns what every objective reads
(:mod:`src.losses.head_outputs`):

- ``plain`` (:class:`LogitsPath`): the logits ``[B, T, V]``;
- ``chunked``, ``cce``, ``liger`` (:class:`HiddenPath`): the final-normed hidden states ``[B, T, D]`` and the LM head,
  from which each loss computes its chunked or fused-kernel form.

A reference model (DPO's frozen copy, the LoRA base) runs its policy's path with ``gather_head=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch.distributed.tensor import DTensor

from src.losses.forms import HEAD_PATHS
from src.losses.head_outputs import HeadOutput, HiddenStates, Logits
from src.modules.sharding import full_tensor


@dataclass(frozen=True)
class HeadPath:
    name: str = "plain"  # the concrete module.loss_impl
    chunk_size: int = 1024  # tokens per chunk under chunked
    gather_head: bool = False  # a sharded (FSDP2) head is gathered: for a no-grad reference, not the policy

    def __call__(self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> HeadOutput:
        raise NotImplementedError

    def for_reference(self) -> HeadPath:
        """This path for a frozen reference: the same computation, its head gathered if sharded."""
        return replace(self, gather_head=True)


class LogitsPath(HeadPath):
    def __call__(self, model, input_ids, attention_mask, labels, position_ids=None) -> Logits:
        logits = model(**model_inputs(input_ids, attention_mask, position_ids), use_cache=False).logits  # (B, T, V)
        return Logits(logits, labels)


class HiddenPath(HeadPath):
    def __call__(self, model, input_ids, attention_mask, labels, position_ids=None) -> HiddenStates:
        hidden, head = last_hidden_and_head(model, input_ids, attention_mask, position_ids)  # (B, T, D)
        weight, bias = head.weight, head.bias
        if self.gather_head:
            weight, bias = full_tensor(weight), None if bias is None else full_tensor(bias)
        elif isinstance(weight, DTensor):  # FSDP2 keeps the root unit (the head) unsharded from forward to backward
            raise ValueError(f"module.loss_impl={self.name!r} under FSDP2 needs the LM head unsharded after the "
                             "forward, and it is sharded here; use module.loss_impl=plain")
        return HiddenStates(hidden, labels, weight, bias, self.name, self.chunk_size)


PLAIN = LogitsPath()  # the default of a reference built outside a module


def head_path(name: str, chunk_size: int = 1024) -> HeadPath:
    """The path for a concrete ``module.loss_impl`` (``auto`` is resolved before, by the module)."""
    if name not in HEAD_PATHS:
        raise ValueError(f"module.loss_impl={name!r}: expected one of {list(HEAD_PATHS)}")
    return (LogitsPath if name == "plain" else HiddenPath)(name, chunk_size)


def model_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 position_ids: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    """The backbone's keyword inputs. Packed rows (``position_ids`` given) go without the attention mask: Hugging Face
    models then attend within each document, which the positions delimit (``src/datamodules/packing.py``)."""
    if position_ids is not None:
        return {"input_ids": input_ids, "position_ids": position_ids}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def last_hidden_and_head(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                         position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.nn.Linear]:
    """``(hidden [B, T, D], head)``: the final-normed hidden states the LM head reads, and the head.

    Through the model's own ``forward`` (so a peft wrapper's hooks and adapters apply) with ``logits_to_keep=1``:
    Hugging Face causal LMs then project only the last position, ``[B, 1, V]``. A head that is not a plain
    ``nn.Linear`` (LoRA on ``lm_head``) or a model that post-processes its logits (soft-capping) would be computed
    wrongly from ``hidden @ W^T + b``, so they are refused.
    """
    out = model(**model_inputs(input_ids, attention_mask, position_ids), use_cache=False, output_hidden_states=True,
                logits_to_keep=1)
    head = model.get_output_embeddings()
    if not plain_linear_head(model):
        raise ValueError(f"module.loss_impl=chunked|cce|liger needs a plain nn.Linear LM head without logit "
                         f"soft-capping, got {type(head).__name__}; use module.loss_impl=plain")
    return out.hidden_states[-1], head


def plain_linear_head(model: torch.nn.Module) -> bool:
    """Whether the logits are exactly ``hidden @ W^T + b``: a plain ``nn.Linear`` LM head and no soft-capping."""
    head = model.get_output_embeddings()
    return type(head) is torch.nn.Linear and not getattr(model.config, "final_logit_softcapping", None)
