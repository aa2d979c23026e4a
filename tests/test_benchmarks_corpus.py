"""The corpus benchmark (:mod:`benchmarks.corpus`): the corpus it makes and the rates it
reads off a run's log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import corpus
from embeddings import data

LOG = """JAX version 0.10.2 available.
Corpus /tmp/big.parquet: 800000 training and 200000 validation rows
adapt: 800000 reviews in 6.40 s (125000 reviews/s)
vectorize: 1000000 reviews in 5.00 s (200000 reviews/s)
Epoch 1/2 - 20.00s - loss: 0.35 - accuracy: 0.82 - val_loss: 0.2 - val_accuracy: 0.91
Epoch 2/2 - 12.00s - loss: 0.30 - accuracy: 0.85 - val_loss: 0.2 - val_accuracy: 0.92
"""


def test_corpus_draws_training_reviews_with_replacement(small_imdb: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    made = corpus.make_corpus(str(small_imdb), path, rows=130, seed=3)
    reviews = data.read_directory(small_imdb)
    drawn = np.random.default_rng(3).integers(0, len(reviews), 130)
    table = pq.read_table(path)
    assert table.column_names == ["text", "label"]
    assert table["text"].to_pylist() == [reviews[i].raw.decode() for i in drawn]
    assert table["label"].to_pylist() == [reviews[i].label for i in drawn]
    assert made["rows"] == 130 and made["bytes"] == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aclImdb", "c.parquet"]  # no partial


def test_rates_are_read_off_the_log() -> None:
    found = corpus.rates(LOG)
    assert found["adapt"] == {"reviews": 800000, "seconds": 6.4, "reviews_per_s": 125000.0}
    assert found["vectorize"]["reviews_per_s"] == 200000.0
    assert found["train"] == {"reviews": 1600000, "seconds": 32.0, "reviews_per_s": 50000.0,
                              "epochs_s": [20.0, 12.0]}


def test_a_log_without_its_lines_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="lacks its adapt, vectorize, split or epoch lines"):
        corpus.rates(LOG.replace("adapt:", "adapted:"))
