"""Data split, vocabulary and sequences: exactly TensorFlow's, on all 25,000 reviews.

No tolerance anywhere here: file lists, tokens and integer ids are compared for
equality against ``fixtures/tutorial_text.json`` (made by ``reference/``).
"""

from __future__ import annotations

import hashlib
import string

import numpy as np
import pytest

from embeddings import data
from embeddings.text import TextVectorization
from parity_tests.reference.make_reference import sequence_hash

pytestmark = pytest.mark.imdb


def _digest(paths: list[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def test_split_has_tensorflows_files(imdb_reviews, tf_text, report) -> None:  # type: ignore[no-untyped-def]
    split = tf_text["split"]
    train_idx, val_idx = data.split_indices(len(imdb_reviews), 0.2, 123)
    train = [imdb_reviews[i].path for i in train_idx]
    val = [imdb_reviews[i].path for i in val_idx]
    assert (len(train), len(val)) == (split["train_count"], split["val_count"])
    assert train[:5] == split["train_paths_head"]
    same = (_digest(train), _digest(val)) == (split["train_paths_sha256"],
                                              split["val_paths_sha256"])
    report.check("split: training and validation file lists (sha256)", "both",
                 0.0 if same else 1.0, 0, "exact")
    assert same


def test_epoch_order_is_tf_datas_first_pass(imdb_split, tf_text) -> None:  # type: ignore[no-untyped-def]
    train, val = imdb_split
    assert list(train["path"][:5]) == tf_text["split"]["train_pass0_head"]
    assert list(val["path"][:5]) == tf_text["split"]["val_pass0_head"]


@pytest.fixture(scope="module")
def vectorizer(imdb_split) -> TextVectorization:  # type: ignore[no-untyped-def]
    vec = TextVectorization(max_tokens=10000, standardize="tutorial", output_sequence_length=100)
    vec.adapt(data.exact_texts(imdb_split[0]))
    return vec


def test_vocabulary_is_tensorflows(vectorizer, tf_text, report) -> None:  # type: ignore[no-untyped-def]
    ours = vectorizer.get_vocabulary()
    wrong = sum(a != b for a, b in zip(ours, tf_text["vocabulary"], strict=False))
    wrong += abs(len(ours) - len(tf_text["vocabulary"]))
    report.check("vocabulary: positions differing of 10,000", "both", wrong, 0, "exact")
    assert ours == tf_text["vocabulary"]


def test_every_sequence_is_tensorflows(vectorizer, imdb_reviews, tf_text, report) -> None:  # type: ignore[no-untyped-def]
    ids = vectorizer([r.raw for r in imdb_reviews])
    ours = [sequence_hash(row) for row in ids]
    mismatched = [r.path for r, a, b in zip(imdb_reviews, ours, tf_text["sequence_hashes"],
                                                              strict=True)
                  if a != b]
    report.check("sequences: reviews differing of 25,000", "both", len(mismatched), 0, "exact")
    assert len(ours) == len(tf_text["sequence_hashes"]) == 25000
    assert mismatched == []


def test_unicode_lowercasing_breaks_vocabulary_parity(imdb_split, tf_text) -> None:  # type: ignore[no-untyped-def]
    """Negative twin: Python's str.lower/str.split (Unicode rules) is not TensorFlow's."""
    def unicode_standardize(texts: np.ndarray) -> np.ndarray:
        table = str.maketrans("", "", string.punctuation)
        return np.array([t.lower().replace("<br />", " ").translate(table)
                         for t in texts.ravel()], dtype=str).reshape(texts.shape)

    vec = TextVectorization(max_tokens=10000, output_sequence_length=100,
                            standardize=unicode_standardize,
                            split=lambda texts: [t.split() for t in texts])
    vec.adapt(data.exact_texts(imdb_split[0]))
    assert vec.get_vocabulary() != tf_text["vocabulary"]
