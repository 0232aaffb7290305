"""FLOPs per token (PaLM appendix B) on a tiny Llama, by hand; MFU arithmetic; the GPU peak table."""

from __future__ import annotations

import pytest

from src.modules.backbones import tiny_llama
from src.utils.flops import flops_per_token, mfu, non_embedding_params, peak_flops


@pytest.mark.parametrize("tied", [False, True])
def test_flops_per_token_of_a_tiny_llama_by_hand(tokenizer, tied):
    """hidden d=8, 2 layers, 2 heads, MLP 4d=32, vocabulary V. Per layer: q, k, v, o 4 d^2 = 256; gate, up, down
    3 x 8 x 32 = 768; two RMSNorm weights 2 d = 16: 1040. Final norm 8. The head d V counts (a matmul), the input
    embedding does not (a lookup); tied, the one shared matrix is the head. N = 2 x 1040 + 8 + 8 V.
    At T = 16: 6 N + 12 x 2 layers x 2 heads x 4 (head size) x 16 = 6 N + 3072."""
    model = tiny_llama(tokenizer, hidden_size=8, num_layers=2, num_heads=2, tie_word_embeddings=tied)
    vocab = len(tokenizer)
    n = 2 * 1040 + 8 + 8 * vocab
    assert non_embedding_params(model) == n
    assert flops_per_token(model, seq_len=16) == 6 * n + 3072
    assert sum(p.numel() for p in model.parameters()) == n + (0 if tied else 8 * vocab)


def test_mfu_is_achieved_over_peak():
    """1,000 tokens/s at 1e9 FLOPs per token on 2 GPUs of 1e12 peak: 1e12 / 2e12 = 0.5."""
    assert mfu(1_000 * 1e9, peak=1e12, devices=2) == pytest.approx(0.5)


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L40S", 362e12), ("NVIDIA L4", 121e12), ("Tesla T4", None),
])
def test_peak_flops_by_device_name(name, expected):
    assert peak_flops(name) == expected
