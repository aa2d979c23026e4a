"""Every output mode on all 25,000 IMDb training reviews, against TensorFlow's record.

``reference/make_text_reference.py --data`` adapted Keras's layer on the reviews in each
mode of :data:`parity_tests.text_compare.IMDB_CASES` and vectorized them in batches of
1,024; it kept SHA-256 digests of the vocabulary and of every output byte.  The engine
must give the same digests; in ``tf_idf`` mode the OOV id's learned weight is held to
2.5 ulp and its column to 3.5 ulp (:mod:`parity_tests.text_compare`), everything else is
equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from embeddings.text import TextVectorization
from parity_tests.conftest import load_fixture
from parity_tests.text_compare import (
    IMDB_BATCH,
    IMDB_CASES,
    OOV_COLUMN_RTOL,
    OOV_RTOL,
    engine_config,
    output_digest,
    vocabulary_digest,
)

pytestmark = pytest.mark.imdb


@pytest.fixture(scope="module")
def texts(imdb_reviews) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [r.raw for r in imdb_reviews]


@pytest.fixture(scope="module")
def recorded() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return load_fixture("text_imdb.json"), load_fixture("text_imdb.npz")


@pytest.mark.parametrize("name", list(IMDB_CASES))
def test_mode_on_all_reviews_is_tensorflows(name: str, texts: list[bytes], recorded,  # type: ignore[no-untyped-def]
                                            report) -> None:
    fixture, arrays = recorded
    record = fixture["cases"][name]
    assert record["config"] == IMDB_CASES[name] and fixture["reviews"] == len(texts)
    vec = TextVectorization(**engine_config(record["config"]))
    vec.adapt(texts)
    tokens = [t.encode("utf-8", "surrogateescape") for t in vec.get_vocabulary()]
    same_vocabulary = vocabulary_digest(tokens) == record["vocabulary_sha256"]
    tf_idf = record["config"].get("output_mode") == "tf_idf"
    digest, oov = output_digest((vec(texts[i:i + IMDB_BATCH])
                                 for i in range(0, len(texts), IMDB_BATCH)), tf_idf)
    report.check(f"text engine on 25,000 reviews, {name}: vocabulary and outputs",
                 "engine", 0.0 if same_vocabulary and digest == record["output_sha256"] else 1.0,
                 0, "sha256 equal" + ("; OOV column 2.5 ulp" if tf_idf else ""))
    assert len(tokens) == record["vocabulary_size"]
    assert [t.decode("utf-8", "surrogateescape") for t in tokens[:30]] == \
        record["vocabulary_head"]
    assert same_vocabulary
    assert digest == record["output_sha256"]
    if tf_idf:
        idf = arrays[f"{name}.idf"]
        assert vec.idf_weights is not None
        assert np.array_equal(vec.idf_weights[1:], idf[1:])
        np.testing.assert_allclose(vec.idf_weights[:1], idf[:1], rtol=OOV_RTOL, atol=0)
        np.testing.assert_allclose(oov, arrays[f"{name}.oov"], rtol=OOV_COLUMN_RTOL, atol=0)
