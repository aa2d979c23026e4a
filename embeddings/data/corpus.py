"""Both subsets of a run as one table read in chunks: :class:`Corpus`.

A :class:`Corpus` holds every row's lossless text as an Arrow column (for a user corpus,
the memory-mapped column ``datasets`` made; for IMDb, the loaded reviews), every row's
label, and which rows make the training and validation subsets in the order the
tutorial's first tf.data pass yields them.  :meth:`Corpus.chunks` hands out the texts a
chunk of consecutive rows at a time, so no more than one chunk of texts is ever held as
Python objects.

A user corpus is split by the tutorial's rule applied to its row indices
(:func:`split_rows`): ``text_dataset_from_directory`` with ``validation_split`` and
``seed``, as if row ``i`` were the ``i``-th file of its sorted walk.  NumPy's
``RandomState(seed)`` shuffles ``0..N-1``, the last ``int(validation_split * N)`` rows are
the validation subset, and each subset is put in the order of tf.data's
``shuffle(8 * batch_size, seed)`` (:mod:`embeddings.data.order`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embeddings import arrow
from embeddings.data.order import split_indices, tfdata_order

if TYPE_CHECKING:
    import datasets

CHUNK_ROWS = 65_536  # texts per chunk: about 85 MB of IMDb-sized reviews


@dataclass(frozen=True)
class Corpus:
    """Every row of a run's two subsets: texts, labels and where each row goes."""

    texts: pa.ChunkedArray  # (N,) lossless texts, string or binary, in table order
    labels: np.ndarray  # (N,) int64, 0 or 1
    train_rows: np.ndarray  # (N_train,) positions in the table, in pass-0 order
    val_rows: np.ndarray  # (N_val,) the same for the validation subset
    # The Arrow stream files ``texts`` maps, in order, and the texts' column in them: when
    # given, chunks are read from them instead of through the mapping (see chunks()).
    files: tuple[str, ...] = ()
    column: str = "text"

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def of_subsets(cls, train: pa.Table, val: pa.Table) -> Corpus:
        """IMDb's two subsets (Arrow tables with ``text``, ``raw`` and ``label``) stacked,
        training rows first, each in its own order."""
        texts = pa.chunked_array([c for t in (train, val) for c in _lossless(t).chunks],
                                 pa.large_binary())
        labels = np.concatenate([arrow.to_numpy(t["label"]) for t in (train, val)],
                                dtype=np.int64)
        return cls(texts, labels, np.arange(len(train)), np.arange(len(train), len(labels)))

    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each row goes: ``(in_train, position)``, both ``(N,)``: whether the row is a
        training row, and its position in its subset's pass-0 order."""
        in_train = np.zeros(len(self), dtype=bool)
        in_train[self.train_rows] = True
        position = np.empty(len(self), dtype=np.int64)
        position[self.train_rows] = np.arange(len(self.train_rows))
        position[self.val_rows] = np.arange(len(self.val_rows))
        return in_train, position

    def chunks(self, keep: np.ndarray | None = None, size: int | None = None
               ) -> Iterator[tuple[slice, list[bytes]]]:
        """The texts, ``size`` consecutive rows at a time, as bytes.

        With :attr:`files` the chunks are read from the files, never through the memory
        mapping: every page of a mapping that was read stays in the process's resident set
        (1.4 GB for a million IMDb reviews), while read pages are freed with their chunk.

        Args:
            keep (np.ndarray | None): ``(N,)`` bool: only these rows' texts are handed out.
                Default: ``None`` (every row).
            size (int | None): rows per chunk. Default: :data:`CHUNK_ROWS`, read at call time.

        Yields:
            tuple[slice, list[bytes]]: the chunk's rows and the texts of those kept.
        """
        size = size or CHUNK_ROWS
        pieces = _streamed(self.files, self.column, size) if self.files else (
            self.texts.slice(start, size) for start in range(0, len(self), size))
        start = 0
        for piece in pieces:
            rows = slice(start, start + len(piece))
            start = rows.stop
            texts = _as_bytes(piece)
            # Picked in Python: an Arrow filter would copy the kept texts once more.
            yield rows, texts if keep is None else list(itertools.compress(texts, keep[rows]))
        if start != len(self):
            raise RuntimeError(f"The corpus files {self.files} hold {start} rows, its table "
                               f"{len(self)}: they are not the table's files.")


def _streamed(files: tuple[str, ...], column: str, size: int) -> Iterator[pa.ChunkedArray]:
    """``column`` of Arrow stream files (as ``datasets`` writes them), ``size`` rows at a
    time across the files."""
    pending: list[pa.Array] = []
    count = 0
    for path in files:
        with pa.OSFile(path) as source:
            for batch in pa.ipc.open_stream(source):
                values = batch.column(column)
                while len(values):
                    taken = values.slice(0, size - count)
                    pending.append(taken)
                    count += len(taken)
                    values = values.slice(len(taken))
                    if count == size:
                        yield pa.chunked_array(pending)
                        pending, count = [], 0
    if pending:
        yield pa.chunked_array(pending)


def _as_bytes(texts: pa.ChunkedArray) -> list[bytes]:
    """Texts as their bytes: an Arrow string is UTF-8, read without decoding it."""
    binary = pa.large_binary() if pa.types.is_large_string(texts.type) or \
        pa.types.is_large_binary(texts.type) else pa.binary()
    return texts.cast(binary).to_pylist()


def _lossless(table: pa.Table) -> pa.ChunkedArray:
    """IMDb's lossless texts as Arrow: the ``raw`` bytes of a file that is not valid UTF-8,
    else its ``text``."""
    text = table["text"].cast(pa.large_binary())
    raw = table["raw"]
    if raw.null_count == len(raw):  # every text valid UTF-8: no copy
        return text
    return pc.if_else(pc.is_null(raw), text, raw.cast(pa.large_binary()))


def dataset_labels(dataset: datasets.Dataset) -> np.ndarray:
    """Each row's label (0 negative, 1 positive) as an int64 array, read as one Arrow column."""
    return np.array(dataset.with_format("arrow")["label"].to_numpy(), dtype=np.int64)


def split_rows(rows: int, validation_split: float, seed: int, batch_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows of a corpus of ``rows`` rows, each subset in the
    order of the tutorial's first tf.data pass (see the module's docstring).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N_train,)`` and ``(N_val,)`` row positions.

    Raises:
        InvalidInput: the split leaves a subset empty.
    """
    train, val = (idx[tfdata_order(len(idx), batch_size, seed, 0)]
                  for idx in split_indices(rows, validation_split, seed))
    return train, val
