"""The reviews as id tensors, for the two backends that vectorize with our engine.

``--backend torch`` and ``--backend keras`` both adapt :class:`~embeddings.text.TextVectorization`
on the training subset (pass 0, as the tutorial's ``adapt`` reads it), vectorize both
subsets, and read the training rows of each epoch in the order the tutorial's tf.data
pipeline yields them (:func:`epoch_order`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embeddings import data as imdb
from embeddings.backends.contract import TrainResult
from embeddings.config import RunConfig
from embeddings.text import TextVectorization


@dataclass
class Vectorized:
    """The vectorized subsets of a run, on one device, training rows in pass-0 order."""

    vectorizer: TextVectorization
    train_ids: torch.Tensor  # (N_train, T) int64
    train_labels: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val, T)
    val_labels: torch.Tensor  # (N_val,)

    def result(self, history: dict[str, list[float]], weights: dict[str, np.ndarray],
               device: str, versions: dict[str, str],
               init_vectors: dict[str, Any] | None = None) -> TrainResult:
        """The contract's result of a run trained on these inputs."""
        return TrainResult(history=history, weights=weights,
                           vocabulary=self.vectorizer.get_vocabulary(),
                           train_reviews=len(self.train_ids), val_reviews=len(self.val_ids),
                           device=device, versions=versions, init_vectors=init_vectors)


def vectorize(config: RunConfig, data: imdb.Splits, device: torch.device) -> Vectorized:
    """Adapt the tutorial's vectorizer (with ``--ngrams``) on the training subset and
    vectorize both subsets."""
    vectorizer = TextVectorization(
        max_tokens=config.text.vocab_size,
        standardize="tutorial",
        output_sequence_length=config.text.sequence_length,
        ngrams=config.text.ngram_widths,
    )
    train_texts = imdb.exact_texts(data.train)
    vectorizer.adapt(train_texts)

    def ids(texts: list[str | bytes]) -> torch.Tensor:
        return torch.from_numpy(vectorizer(texts)).to(device)

    def labels(ds: Any) -> torch.Tensor:
        return torch.from_numpy(imdb.labels(ds)).to(device)

    return Vectorized(vectorizer, ids(train_texts), labels(data.train),
                      ids(imdb.exact_texts(data.val)), labels(data.val))


def epoch_order(config: RunConfig, rows: int, epoch: int) -> torch.Tensor | None:
    """The training rows' order in ``epoch`` (0-based), as positions in pass 0; ``None``
    when it is pass 0 itself (always, without ``--reshuffle``).

    See :func:`embeddings.data.epoch_pass` for which tf.data pass an epoch reads.
    """
    pass_index = imdb.epoch_pass(epoch, config.data.reshuffle)
    if pass_index == 0:
        return None
    return torch.from_numpy(imdb.pass_order(rows, config.train.batch_size,
                                            config.data.split_seed, pass_index))
