"""The reviews as id tensors, for the two backends that vectorize with our engine.

``--backend torch`` and ``--backend keras`` both adapt :class:`~embeddings.text.TextVectorization`
on the training subset (the tutorial's ``adapt`` reads pass 0; the vocabulary does not
depend on the order), vectorize both subsets, and read the training rows of each epoch in
the order the tutorial's tf.data pipeline yields them (:func:`epoch_order`).

Both steps read the texts a chunk of rows at a time (:meth:`embeddings.data.Corpus.chunks`)
and the ids are stored as int32 (the op widens each batch), so a corpus of a million
reviews needs ``N x T x 4`` bytes of ids and one chunk of texts, not every text at once.
Within a chunk the compiled text kernels already use every core.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embeddings import data as imdb
from embeddings.backends.contract import TrainResult
from embeddings.config import RunConfig
from embeddings.text import TextVectorization

log = logging.getLogger(__name__)
IDS_DTYPE = np.int32  # vocabularies stop at 2**31 - 1 ids (embeddings.config.MAX_SIZE)


@dataclass
class Vectorized:
    """The vectorized subsets of a run, on one device, training rows in pass-0 order."""

    vectorizer: TextVectorization
    train_ids: torch.Tensor  # (N_train, T) int32
    train_labels: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val, T) int32
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
    vectorize both subsets, a chunk of rows at a time; logs the reviews per second of each."""
    vectorizer = TextVectorization(
        max_tokens=config.text.vocab_size,
        standardize="tutorial",
        output_sequence_length=config.text.sequence_length,
        ngrams=config.text.ngram_widths,
    )
    corpus = data.rows()
    in_train, position = corpus.layout()
    start = time.perf_counter()
    vectorizer.adapt(texts for _, texts in corpus.chunks(keep=in_train) if texts)
    _log_rate("adapt", len(corpus.train_rows), start)
    start = time.perf_counter()
    subsets = [np.empty((len(rows), config.text.sequence_length), dtype=IDS_DTYPE)
               for rows in (corpus.train_rows, corpus.val_rows)]  # (N_train, T), (N_val, T)
    for rows, texts in corpus.chunks():
        ids = vectorizer(texts)  # (n, T) int64
        train = in_train[rows]
        subsets[0][position[rows][train]] = ids[train]
        subsets[1][position[rows][~train]] = ids[~train]
    _log_rate("vectorize", len(corpus), start)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    return Vectorized(vectorizer, tensor(subsets[0]), tensor(corpus.labels[corpus.train_rows]),
                      tensor(subsets[1]), tensor(corpus.labels[corpus.val_rows]))


def _log_rate(step: str, reviews: int, start: float) -> None:
    seconds = time.perf_counter() - start
    log.info("%s: %d reviews in %.2f s (%.0f reviews/s)", step, reviews, seconds,
             reviews / max(seconds, 1e-9))


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
