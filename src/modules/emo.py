"""EMO: Earth Mover Distance Optimization (Ren et al., ICLR 2024, arXiv 2310.04691), mixed with MLE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from src.losses.emo import EMO, EMO_MIX, EMO_TERMS
from src.losses.head_outputs import HeadOutput
from src.modules.base import Metrics, PostTrainModule
from src.modules.sharding import full_tensor
from src.utils.checks import require, require_choice

COST_EMBEDDINGS = ("fixed", "adaptive", "external")
TENSOR_SUFFIXES = (".pt", ".pth", ".bin")


class EMOModule(PostTrainModule):
    """EMO with a cosine transport cost between rows of an LM-head matrix ``E [V, D]`` (``DRSY/EMO``).

    ``cost_embedding`` says which ``E``, always without gradient:

    - ``fixed``: a frozen copy of this model's LM head as built (``emo_patch.emo2_fixed``, the FSDP continual and
      instruction-tuning scripts). It is a *persistent* buffer, so a resumed run keeps the initial head from the
      checkpoint, even if the backbone factory would now build different weights; it lives on this module, not on the
      backbone, so Hugging Face exports and LoRA merges stay clean;
    - ``adaptive``: the live head, detached each step (``emo_patch.emo1_adaptive``, the README's SFT recommendation);
    - ``external``: another model's head (the LoRA continual script uses Llama-2-13B's for a 7B), from a Hugging Face
      model path or a ``torch.save``-d ``[V, D]`` tensor (``.pt``/``.pth``/``.bin``); persistent like ``fixed``.

    Under LoRA the head is not trained, so ``fixed`` and ``adaptive`` coincide. Under FSDP2 ``fixed`` is copied
    before sharding and stays a full tensor on every rank; ``adaptive`` gathers the sharded head each step.
    ``mix="emo1"`` keeps the loss value equal to CE; ``mix="emo2"`` logs ``2 * emo``. On logged steps the token-mean
    transport cost is logged as ``emo``; the official ``mle`` term is the base's ``ce`` (taken from the same pass, not
    recomputed).

    ``loss_impl=chunked`` computes the same loss from the hidden states and the head, a chunk of tokens at a time
    (``chunked_emo_loss`` in ``src/losses/emo.py``), for every cost embedding (all are without gradient).
    """

    losses = (EMO,)

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_impl: str = "auto",
        loss_chunk_size: int = 1024,
        mix: str = "emo2",
        ratio_clamp: float | None = None,
        remove_target_prob: bool = True,
        cost_embedding: str = "fixed",
        cost_embedding_path: str | None = None,
    ):
        super().__init__(model, optimizer, scheduler, loss_impl, loss_chunk_size)
        require_choice("module.mix", mix, EMO_MIX)
        require(ratio_clamp is None or ratio_clamp > 0, "module.ratio_clamp", ratio_clamp, "> 0, or null for none")
        require(ratio_clamp is None or mix == "emo1", "module.ratio_clamp", ratio_clamp,
                "null unless module.mix=emo1 (no official variant clamps emo2)")
        require_choice("module.cost_embedding", cost_embedding, COST_EMBEDDINGS)
        require((cost_embedding == "external") == (cost_embedding_path is not None), "module.cost_embedding_path",
                cost_embedding_path, "a model path or tensor file exactly when module.cost_embedding=external")
        self.mix, self.ratio_clamp, self.remove_target_prob = mix, ratio_clamp, remove_target_prob
        self.cost_source, self.cost_path = cost_embedding, cost_embedding_path
        self.register_buffer("cost_embedding", None, persistent=True)  # (V, D), set in on_model_built

    def on_model_built(self) -> None:
        head = self.model.get_output_embeddings().weight  # peft forwards this to the wrapped model
        if self.cost_source == "fixed":
            self.cost_embedding = head.detach().clone()
        elif self.cost_source == "external":
            self.cost_embedding = load_cost_embedding(self.cost_path, vocab_size=head.shape[0]).to(head)

    def cost_matrix(self) -> torch.Tensor:
        """The ``[V, D]`` matrix the transport cost uses this step."""
        if self.cost_source == "adaptive":  # under FSDP2 the head is a sharded DTensor: every rank gathers it
            return full_tensor(self.model.get_output_embeddings().weight.detach())
        return self.cost_embedding

    def objective(self, out: HeadOutput, num_items_in_batch: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        cost = self.cost_matrix()
        loss = out.loss(EMO, cost_embedding=cost, mix=self.mix, ratio_clamp=self.ratio_clamp,
                        remove_target_prob=self.remove_target_prob, num_items_in_batch=num_items_in_batch)
        metrics: Metrics = {}
        if not self.training or self.logs_this_step():
            with torch.no_grad():  # one more pass over (N, V), only on steps that are written out
                emo, mle = out.detach().loss(EMO_TERMS, cost_embedding=cost, remove_target_prob=self.remove_target_prob)
            metrics.update(emo=emo, ce=mle)  # giving "ce" spares the base a second pass
        return loss, metrics


def load_cost_embedding(path: str, vocab_size: int) -> torch.Tensor:
    """Another model's LM head ``[V, D]`` from a saved tensor or a Hugging Face model; V must equal ``vocab_size``.

    A model path loads the whole donor on CPU once per run (26 GB for a 13B in bf16) to read its head;
    ``torch.save(donor.get_output_embeddings().weight, "head.pt")`` once, and point at that file, to skip it.
    """
    if Path(path).suffix in TENSOR_SUFFIXES:
        if not Path(path).is_file():
            raise FileNotFoundError(f"module.cost_embedding_path={path!r}: no such tensor file")
        weight = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(weight, dict):  # a state dict holding just the head, e.g. {"weight": ...}
            require(len(weight) == 1, "module.cost_embedding_path", path, "a [V, D] tensor or a one-tensor state dict")
            weight = next(iter(weight.values()))
    else:
        from transformers import AutoModelForCausalLM

        donor = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
        weight = donor.get_output_embeddings().weight.detach()
        del donor
    if weight.dim() != 2 or weight.shape[0] != vocab_size:
        raise ValueError(
            f"module.cost_embedding_path={path!r} gives a cost embedding of shape {tuple(weight.shape)}, but the "
            f"model's LM head has V={vocab_size} rows: the cost model must share this tokenizer (and any added tokens)"
        )
    return weight.float()
