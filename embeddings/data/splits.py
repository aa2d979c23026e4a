"""The tutorial's training and validation subsets, and the test reviews, each a
:class:`datasets.Dataset`.

:func:`load_splits` reads a source (:func:`~embeddings.data.sources.read_source`, or a
user's corpus: :mod:`embeddings.data.columns`), splits it as Keras does and puts each
subset in the order of the tutorial's first tf.data pass (:mod:`embeddings.data.order`).
:func:`load_test` reads the held-out ``aclImdb/test`` reviews of the same kinds of source,
for evaluation only.

Each row holds ``text`` (str), ``label`` (0 = neg, 1 = pos), ``path`` (relative to the
class folders' parent, e.g. ``neg/0_3.txt``) and ``raw``: ``None`` when the file is valid
UTF-8 (then ``text`` is lossless), else the file's exact bytes (``text`` then shows them
with U+FFFD).  :func:`exact_texts` picks the lossless form, which is what the vectorizer
must see to match TensorFlow.  A user corpus's rows hold only ``text`` and ``label``, and
its :class:`Splits` carry the whole memory-mapped table as a :class:`Corpus` to be read in
chunks.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from embeddings import arrow
from embeddings.data.columns import corpus_source, read_corpus
from embeddings.data.corpus import Corpus, split_rows
from embeddings.data.reviews import CLASSES, DataSourceError, Review
from embeddings.data.sources import read_source
from embeddings.errors import InvalidInput

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def _to_table(reviews: list[Review]) -> pa.Table:
    """The reviews as an Arrow table (see the module's docstring for the columns)."""
    texts: list[bytes] = []  # valid UTF-8: the file's bytes, else its U+FFFD rendering
    raws: list[bytes | None] = []
    for r in reviews:
        try:
            r.raw.decode("utf-8")
            texts.append(r.raw)
            raws.append(None)
        except UnicodeDecodeError:
            texts.append(r.raw.decode("utf-8", "replace").encode())
            raws.append(r.raw)
    return pa.table({
        "text": arrow.binary(texts).cast(pa.string()),  # checked UTF-8
        "label": arrow.numbers(np.fromiter((r.label for r in reviews), np.int64, len(reviews))),
        "path": arrow.binary([r.path.encode() for r in reviews]).cast(pa.string()),
        "raw": arrow.binary(raws).cast(pa.binary()),
    })


def _as_dataset(table: pa.Table) -> datasets.Dataset:
    """A :func:`_to_table` table as an in-memory dataset, with a random fingerprint instead
    of one hashed from its contents: for the 25,000 training reviews
    ``Dataset.from_dict`` took 0.78 s and 226 MB more at its peak, this 0.20 s and 49 MB
    (measured on the same contents)."""
    import datasets
    from datasets.fingerprint import generate_random_fingerprint

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "path": datasets.Value("string"),
            "raw": datasets.Value("binary"),
        }
    )
    return datasets.Dataset(datasets.table.InMemoryTable(table),
                            info=datasets.DatasetInfo(features=features),
                            fingerprint=generate_random_fingerprint())


def exact_texts(dataset: datasets.Dataset) -> list[str | bytes]:
    """Each row's lossless text: ``raw`` bytes where the file is not valid UTF-8, else ``text``.

    The columns are read as Arrow arrays (row order and any index mapping kept): reading
    them row by row through ``datasets``' formatting takes 20 times longer.  A user
    corpus's rows have no ``raw``: their ``text`` is what the file holds."""
    columns = dataset.with_format("arrow")
    if "raw" not in dataset.column_names:
        return columns["text"].to_pylist()
    return [r if r is not None else t for t, r in zip(columns["text"].to_pylist(),
                                                      columns["raw"].to_pylist(), strict=True)]


@dataclass(frozen=True)
class Splits:
    """The tutorial's two subsets of the labelled reviews, each in pass-0 order.

    ``train`` and ``val`` are :class:`datasets.Dataset` objects.  IMDb's are made from their
    Arrow tables at first use: training reads :meth:`rows` alone, and importing
    ``datasets`` would cost a tutorial run 0.45 s and 60 MB."""

    subsets: tuple[pa.Table, pa.Table] | tuple[datasets.Dataset, datasets.Dataset]
    source: str  # where the reviews came from
    corpus: Corpus | None = None  # a user corpus: all its rows, memory-mapped

    @functools.cached_property
    def train(self) -> datasets.Dataset:
        """The training subset."""
        return _dataset(self.subsets[0])

    @functools.cached_property
    def val(self) -> datasets.Dataset:
        """The validation subset."""
        return _dataset(self.subsets[1])

    def sizes(self) -> tuple[int, int]:
        """How many training and validation rows."""
        return len(self.subsets[0]), len(self.subsets[1])

    def rows(self) -> Corpus:
        """Both subsets' rows as one :class:`Corpus`, to be read in chunks."""
        if self.corpus is not None:
            return self.corpus
        train, val = self.subsets
        assert isinstance(train, pa.Table) and isinstance(val, pa.Table)  # IMDb's
        return Corpus.of_subsets(train, val)


def _dataset(subset: pa.Table | datasets.Dataset) -> datasets.Dataset:
    return _as_dataset(subset) if isinstance(subset, pa.Table) else subset


def load_splits(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
    text_column: str = "text",
    label_column: str = "label",
) -> Splits:
    """The tutorial's training and validation subsets of the IMDb training reviews, or of
    a user's corpus.

    Args:
        source (str | os.PathLike | None): see :func:`read_source`, or a corpus (see
            :func:`~embeddings.data.columns.corpus_source`). Default: ``None``
            (``$EMBEDDINGS_DATA``, then the IMDb fallbacks).
        validation_split (float): fraction held out. Default: ``0.2``.
        seed (int): seed of the split and of the tf.data shuffle. Default: ``123``.
        batch_size (int): the tutorial's batch size; the shuffle buffer is 8 times it.
            Default: ``1024``.
        text_column (str): a corpus's text column. Default: ``"text"``.
        label_column (str): a corpus's label column (0/1 or false/true).
            Default: ``"label"``.

    Returns:
        Splits: ``train`` and ``val``, each in the order of the tutorial's first tf.data
        pass (every epoch's order, because of ``.cache()``), and the source's description;
        for a corpus also the memory-mapped :class:`Corpus` of all its rows.

    Raises:
        DataSourceError: the source is unusable, or column names given for IMDb.
        InvalidInput: ``validation_split`` leaves a subset empty.
    """
    if not 0.0 < validation_split < 1.0:
        raise InvalidInput(
            "validation_split must lie strictly between 0 and 1. "
            f"Received: validation_split={validation_split}"
        )
    source = source if source is not None else os.environ.get("EMBEDDINGS_DATA") or None
    corpus = None if source is None else corpus_source(source)
    start = time.perf_counter()
    if corpus is not None:
        rows, labels = read_corpus(corpus, text_column, label_column)
        train_rows, val_rows = split_rows(len(rows), validation_split, seed, batch_size)
        log.info("Corpus %s: %d training and %d validation rows, read in %.2f s", corpus.name,
                 len(train_rows), len(val_rows), time.perf_counter() - start)
        files = tuple(f["filename"] for f in rows.cache_files)  # none: held in memory
        return Splits((rows.select(train_rows, keep_in_memory=True),
                       rows.select(val_rows, keep_in_memory=True)), corpus.name,
                      Corpus(rows.with_format("arrow")["text"], labels, train_rows, val_rows,
                             files, text_column))
    if (text_column, label_column) != ("text", "label"):
        raise DataSourceError(
            "--text-column and --label-column name a corpus file's columns; the IMDb reviews "
            "have none to choose. Received: text_column={text_column!r}, "
            f"label_column={label_column!r}; drop them, or use --data with a corpus file.")
    reviews, where = read_source(source)
    train, val = (_to_table([reviews[i] for i in rows])
                  for rows in split_rows(len(reviews), validation_split, seed, batch_size))
    log.info("IMDb from %s: %d training and %d validation reviews, read in %.2f s", where,
             len(train), len(val), time.perf_counter() - start)
    return Splits((train, val), where)


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
        DataSourceError: the source is unusable or has no test split (a corpus file has
            none: its held-out rows are the validation subset).
    """
    corpus = None if source is None else corpus_source(source)
    if corpus is not None:
        raise DataSourceError(
            f"The corpus {corpus.name} has no test split: only IMDb's aclImdb/test has one. "
            "Score its validation rows (--split validation), or pass --data with the IMDb "
            "test reviews.")
    reviews, where = read_source(source, subset="test")
    log.info("IMDb test split from %s: %d reviews", where, len(reviews))
    return _as_dataset(_to_table(reviews)), where


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
