"""A TensorFlow-trained ``.keras`` converted to our format predicts what TensorFlow predicted.

``fixtures/keras`` holds a tutorial model trained in TensorFlow (1,000-token
vocabulary, ``TextVectorization`` inside) and TF's logits for 64 validation
reviews.  Bound: 1e-6 absolute on logits of order 1: the vectorizer and weights
are exact, and only the 16 -> 1 matmul and the mean's summation order can differ
by a few float32 ulps (PARITY.md section 8).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embeddings import convert, predict, runs
from embeddings.model import SentimentClassifier
from embeddings.testing import assert_close
from parity_tests.conftest import FIXTURES, load_fixture

pytestmark = pytest.mark.imdb


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_converted_tf_model_predicts_tfs_logits(imdb_reviews, tmp_path: Path, report,  # type: ignore[no-untyped-def]
                                                backend: str) -> None:
    if backend == "keras":
        pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    reference = load_fixture("keras/tutorial_small_logits.json")
    run = runs.load_run(convert.keras_to_run(FIXTURES / "keras" / "tutorial_small.keras",
                                             tmp_path / "run"))
    by_path = {r.path: r.raw for r in imdb_reviews}
    texts = [by_path[p] for p in reference["paths"]]
    expected = torch.tensor(reference["logits"])
    if backend == "torch":
        model = SentimentClassifier.from_weights(run.weights)
        logits = model(torch.from_numpy(run.vectorizer()(texts))).detach()
        report.check("TF-trained .keras converted: logits", backend,
                     float((logits - expected).abs().max()), 1e-6)
        assert_close(logits, expected, rtol=0, atol=1e-6)
    probs = predict.predict(texts, run, backend=backend)
    report.check("TF-trained .keras converted: probabilities", backend,
                 float((probs - torch.sigmoid(expected)).abs().max()), 1e-6)
    assert_close(probs, torch.sigmoid(expected), rtol=0, atol=1e-6)
