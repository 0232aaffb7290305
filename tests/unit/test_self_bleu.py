"""Self-BLEU: limit values, equality with direct sacrebleu calls, and the GEM one-reference bug made visible."""

import pytest

sacrebleu = pytest.importorskip("sacrebleu")

from src.eval.metrics.self_bleu import mean_self_bleu, self_bleu, self_bleu_gem_official  # noqa: E402


def test_identical_samples_score_100_in_both_variants():
    samples = ["the cat sat on the mat"] * 3
    assert self_bleu(samples) == pytest.approx(100.0)
    assert self_bleu_gem_official(samples) == pytest.approx(100.0)


def test_disjoint_vocabularies_score_near_zero():
    assert self_bleu(["alpha beta gamma delta", "one two three four", "red green blue yellow"]) < 1.0


def test_equals_direct_corpus_bleu_with_one_stream_per_other_sample():
    a, b, c = "the cat sat on the mat", "the cat sat on a mat", "a dog ran in the park"
    expected = (
        sacrebleu.corpus_bleu([a], [[b], [c]]).score
        + sacrebleu.corpus_bleu([b], [[a], [c]]).score
        + sacrebleu.corpus_bleu([c], [[a], [b]]).score
    ) / 3
    assert self_bleu([a, b, c]) == pytest.approx(expected)


def test_gem_official_only_sees_the_first_other_sample():
    # Sample 0 shares no word with 1 and 2, which are identical. Corrected: sample 0 scores 0, samples 1 and 2 find
    # each other among their references and score 100 -> (0 + 100 + 100) / 3. GEM's single stream aligns only its first
    # segment, which is sample 0 for samples 1 and 2 (and sample 1 for sample 0), so every score is 0.
    odd, same = "quick brown foxes jump over lazy dogs", "the cat sat on the mat today"
    samples = [odd, same, same]
    assert self_bleu(samples) == pytest.approx(200 / 3)
    assert self_bleu_gem_official(samples) == pytest.approx(0.0)
    # The official call for sample 1 equals BLEU against sample 0 alone; its other reference (sample 2) is ignored.
    official_1 = sacrebleu.corpus_bleu([same], [[odd, same]]).score
    assert official_1 == pytest.approx(sacrebleu.corpus_bleu([same], [[odd]]).score) == pytest.approx(0.0)
    assert sacrebleu.corpus_bleu([same], [[odd], [same]]).score == pytest.approx(100.0)


def test_mean_over_prompts_and_argument_checks():
    groups = [["x y z w"] * 2, ["alpha beta gamma delta", "one two three four"]]
    assert mean_self_bleu(groups) == pytest.approx((100.0 + 0.0) / 2)
    assert mean_self_bleu(groups, variant="gem_official") == pytest.approx(50.0)
    with pytest.raises(ValueError, match=">= 2 samples"):
        self_bleu(["only one"])
    with pytest.raises(ValueError, match="variant"):
        mean_self_bleu(groups, variant="nltk")
