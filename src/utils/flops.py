"""Model FLOPs per token and a GPU's peak, for model FLOPs utilisation (MFU): pure arithmetic, no trainer."""

from __future__ import annotations

from torch import nn

# Dense bf16/fp16 tensor-core peak in FLOP/s (the vendor's data sheet without sparsity), by a substring of
# torch.cuda.get_device_name(); the first match wins, so a specific name precedes one it contains.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),  # the H100's compute with more memory; GH200 too
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``device_name``, or None when it is not in :data:`PEAK_FLOPS`."""
    return next((flops for name, flops in PEAK_FLOPS if name in device_name), None)


def non_embedding_params(model: nn.Module) -> int:
    """Parameters that cost matmul FLOPs: all but the input embedding, a lookup. The output head is a matmul and
    counts, also when it shares the embedding's weight (as nanoGPT's ``estimate_mfu`` counts a tied head)."""
    params = {id(p): p.numel() for p in model.parameters()}
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    if head is None or head.weight is not embedding:
        params.pop(id(embedding), None)
    return sum(params.values())


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token, PaLM (Chowdhery et al. 2022) appendix B: ``6 N + 12 L H Q T``.

    ``6 N``: forward (2 N) and backward (4 N) matmuls over the N non-embedding parameters, frozen ones included
    (a LoRA run overstates its backward by up to 2 N); ``12 L H Q T``: the attention scores and their weighted sum,
    L layers, H heads of size Q, over a sequence of T tokens (without halving for the causal mask, as PaLM)."""
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 6 * non_embedding_params(model) + 12 * config.num_hidden_layers * heads * head_dim * seq_len


def mfu(flops_per_sec: float, peak: float, devices: int = 1) -> float:
    """Model FLOPs utilisation: the model FLOPs achieved per second over the peak of all ``devices``."""
    return flops_per_sec / (peak * devices)
