"""The backbone's inputs, and its last hidden state with the LM head: what the chunked losses read instead of logits."""

from __future__ import annotations

import torch


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
