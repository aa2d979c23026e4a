"""The tutorial's training and validation subsets, and the test reviews, each a
:class:`datasets.Dataset`.

:func:`load_splits` reads a source (:func:`~embeddings.data.sources.read_source`), splits
it as Keras does and puts each subset in the order of the tutorial's first tf.data pass
(:mod:`embeddings.data.order`).  :func:`load_test` reads the held-out ``aclImdb/test``
reviews of the same kinds of source, for evaluation only.

Each row holds ``text`` (str), ``label`` (0 = neg, 1 = pos), ``path`` (relative to the
class folders' parent, e.g. ``neg/0_3.txt``) and ``raw``: ``None`` when the file is valid
UTF-8 (then ``text`` is lossless), else the file's exact bytes (``text`` then shows them
with U+FFFD).  :func:`exact_texts` picks the lossless form, which is what the vectorizer
must see to match TensorFlow.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from embeddings.data.order import split_indices, tfdata_order
from embeddings.data.reviews import CLASSES, Review
from embeddings.data.sources import read_source
from embeddings.errors import InvalidInput

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def _to_dataset(reviews: list[Review]) -> datasets.Dataset:
    import datasets

    texts: list[str] = []
    raws: list[bytes | None] = []
    for r in reviews:
        try:
            texts.append(r.raw.decode("utf-8"))
            raws.append(None)
        except UnicodeDecodeError:
            texts.append(r.raw.decode("utf-8", "replace"))
            raws.append(r.raw)
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "path": datasets.Value("string"),
            "raw": datasets.Value("binary"),
        }
    )
    return datasets.Dataset.from_dict(
        {"text": texts, "label": [r.label for r in reviews], "path": [r.path for r in reviews],
         "raw": raws},
        features=features,
    )


def exact_texts(dataset: datasets.Dataset) -> list[str | bytes]:
    """Each row's lossless text: ``raw`` bytes where the file is not valid UTF-8, else ``text``.

    The columns are read as Arrow arrays (row order and any index mapping kept): reading
    them row by row through ``datasets``' formatting takes 20 times longer."""
    columns = dataset.with_format("arrow")
    return [r if r is not None else t for t, r in zip(columns["text"].to_pylist(),
                                                      columns["raw"].to_pylist(), strict=True)]


def labels(dataset: datasets.Dataset) -> np.ndarray:
    """Each row's label (0 negative, 1 positive) as an int64 array, read as one Arrow column."""
    return np.array(dataset.with_format("arrow")["label"].to_numpy(), dtype=np.int64)


@dataclass(frozen=True)
class Splits:
    """The tutorial's two subsets of the labelled reviews, each in pass-0 order."""

    train: datasets.Dataset
    val: datasets.Dataset
    source: str  # where the reviews came from


def load_splits(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> Splits:
    """The tutorial's training and validation subsets of the IMDb training reviews.

    Args:
        source (str | os.PathLike | None): see :func:`read_source`. Default: ``None``.
        validation_split (float): fraction held out. Default: ``0.2``.
        seed (int): seed of the split and of the tf.data shuffle. Default: ``123``.
        batch_size (int): the tutorial's batch size; the shuffle buffer is 8 times it.
            Default: ``1024``.

    Returns:
        Splits: ``train`` and ``val``, each in the order of the tutorial's first tf.data
        pass (every epoch's order, because of ``.cache()``), and the source's description.

    Raises:
        DataSourceError: the source is unusable.
        InvalidInput: ``validation_split`` leaves a subset empty.
    """
    if not 0.0 < validation_split < 1.0:
        raise InvalidInput(
            "validation_split must lie strictly between 0 and 1. "
            f"Received: validation_split={validation_split}"
        )
    reviews, where = read_source(source)
    train_idx, val_idx = split_indices(len(reviews), validation_split, seed)
    subsets = []
    for idx in (train_idx, val_idx):
        order = tfdata_order(len(idx), batch_size, seed, 0)
        subsets.append(_to_dataset([reviews[i] for i in idx[order]]))
    log.info("IMDb from %s: %d training and %d validation reviews", where, *map(len, subsets))
    return Splits(subsets[0], subsets[1], where)


def load_test(source: str | os.PathLike[str] | None = None) -> tuple[datasets.Dataset, str]:
    """The IMDb test reviews (``aclImdb/test/{neg,pos}``, the hub's ``test`` split).

    Never train or tune on them: they are for the final evaluation.

    Args:
        source (str | os.PathLike | None): see :func:`read_source`; it must hold the test
            split (the full ``aclImdb`` folder or tarball, or ``"hub"``). Default: ``None``.

    Returns:
        tuple[datasets.Dataset, str]: the reviews in sorted-walk order (``neg`` first),
        with the columns of :func:`load_splits`, and the source's description.

    Raises:
        DataSourceError: the source is unusable or has no test split.
    """
    reviews, where = read_source(source, subset="test")
    log.info("IMDb test split from %s: %d reviews", where, len(reviews))
    return _to_dataset(reviews), where


def load_imdb(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, val)`` of :func:`load_splits` with the same arguments."""
    splits = load_splits(source, validation_split=validation_split, seed=seed,
                         batch_size=batch_size)
    return splits.train, splits.val
