"""The embedding table for viewers: the Embedding Projector's ``vectors.tsv`` and
``metadata.tsv`` as the tutorial writes them, what TensorBoard's Projector tab reads, and
``vectors.vec`` in the word2vec/fastText text format.

The TSVs follow the tutorial byte for byte (``PARITY.md`` section 9): one line per
vocabulary entry except the padding row 0, values printed as ``str(numpy.float32)``
(the shortest decimal that round-trips) and joined by tabs, ``\\n`` line ends, no header.

TensorBoard's projector plugin looks for ``projector_config.pbtxt`` in the folder given
as ``--logdir`` and in every run folder under it (a folder holding an event file); the
paths in it must lie inside the config's folder.  So the config sits in the run
directory itself and points at the TSVs beside it (nothing is written twice), and an
event file holding only its version record makes the run directory a TensorBoard run,
so that ``tensorboard --logdir runs`` shows every run's projector as well as
``tensorboard --logdir runs/<run>``.  All of it is written here, each file atomically;
nothing imports TensorBoard.

``vectors.vec`` holds the same rows: a header ``N D``, then ``token v1 ... vD`` per line,
space-separated, the values printed as in ``vectors.tsv`` so they parse back to the same
float32 bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.files import atomic_write_bytes, atomic_write_text
from embeddings.runs.events import event_file_bytes

VECTORS_FILE = "vectors.tsv"
METADATA_FILE = "metadata.tsv"
PROJECTOR_CONFIG_FILE = "projector_config.pbtxt"  # the name TensorBoard looks for
EVENTS_FILE = "events.out.tfevents.projector"  # TensorBoard reads any name with "tfevents"
VEC_FILE = "vectors.vec"

PROJECTOR_TENSOR_NAME = "embedding"  # the layer's name in the tutorial
PROJECTOR_CONFIG = (
    "embeddings {\n"
    f'  tensor_name: "{PROJECTOR_TENSOR_NAME}"\n'
    f'  tensor_path: "{VECTORS_FILE}"\n'
    f'  metadata_path: "{METADATA_FILE}"\n'
    "}\n"
)

# What word2vec and fastText readers split a line on.
_VEC_SEPARATORS = frozenset(" \t\n\v\f\r")


def _table(weights: Any, vocabulary: Sequence[str]) -> np.ndarray:
    """``weights`` as a float32 NumPy ``(V, D)`` table with a row per vocabulary entry.

    Raises:
        ValueError: the table is not 2-D or has fewer rows than the vocabulary.
    """
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().cpu().numpy()
    table = np.asarray(weights, dtype=np.float32)
    if table.ndim != 2 or table.shape[0] < len(vocabulary):
        raise ValueError(
            "weights must be a (V, D) table with a row per vocabulary entry. "
            f"Received: weights.shape={table.shape}, len(vocabulary)={len(vocabulary)}"
        )
    return table


def value_rows(table: np.ndarray) -> list[str]:
    """Each row of the ``(V, D)`` ``table`` as text: its values printed as
    ``str(numpy.float32)`` and joined by tabs, a ``vectors.tsv`` line (``vectors.vec``
    joins them by spaces).  Printing is the writers' whole cost (0.08 s for the tutorial's
    10,000 x 16): a caller writing both files prints once and passes the rows to each."""
    return ["\t".join(map(str, row)) for row in table]


def write_projector_tsv(weights: Any, vocabulary: Sequence[str],
                        out_dir: str | os.PathLike[str],
                        values: Sequence[str] | None = None) -> None:
    """Write ``vectors.tsv`` and ``metadata.tsv`` for the Embedding Projector.

    Args:
        weights (np.ndarray | torch.Tensor): ``(V, D)`` embedding table.
        vocabulary (Sequence[str]): tokens in id order; row ``i`` of ``weights`` is token ``i``.
        out_dir (str | os.PathLike): folder to write into.
        values (Sequence[str] | None): :func:`value_rows` of the table, when the caller
            has them. Default: ``None`` (printed here).

    Raises:
        ValueError: the table has fewer rows than the vocabulary.
    """
    table = _table(weights, vocabulary)
    values = value_rows(table) if values is None else values
    rows = range(1, len(vocabulary))  # the tutorial skips index 0, the padding
    vectors = "".join(values[i] + "\n" for i in rows)
    words = "".join(vocabulary[i] + "\n" for i in rows)
    atomic_write_text(Path(out_dir) / VECTORS_FILE, vectors)
    atomic_write_text(Path(out_dir) / METADATA_FILE, words)


def write_tensorboard_projector(out_dir: str | os.PathLike[str], weights: Any,
                                vocabulary: Sequence[str],
                                values: Sequence[str] | None = None) -> None:
    """Write everything TensorBoard's Projector tab reads: ``vectors.tsv`` and
    ``metadata.tsv`` (:func:`write_projector_tsv`), ``projector_config.pbtxt`` pointing at
    them, and ``events.out.tfevents.projector``, which makes ``out_dir`` a TensorBoard run.

    ``tensorboard --logdir out_dir`` then shows the ``len(vocabulary) - 1`` tokens
    (padding excluded) as labelled points, and so does ``--logdir`` of any folder above.

    Args:
        weights (np.ndarray | torch.Tensor): ``(V, D)`` embedding table.
        vocabulary (Sequence[str]): tokens in id order, ``''`` (padding, not shown) first.
        out_dir (str | os.PathLike): the run directory (or its staging folder).
        values (Sequence[str] | None): :func:`value_rows` of the table, when the caller
            has them. Default: ``None`` (printed here).

    Raises:
        ValueError: the table has fewer rows than the vocabulary, or the vocabulary holds
            no token besides the padding.
    """
    if len(vocabulary) < 2:
        raise ValueError(
            "The projector needs at least one token besides the padding. Received: "
            f"len(vocabulary)={len(vocabulary)}; pass the run's vocabulary ('' and '[UNK]' "
            "first)."
        )
    write_projector_tsv(weights, vocabulary, out_dir, values)
    out = Path(out_dir)
    atomic_write_text(out / PROJECTOR_CONFIG_FILE, PROJECTOR_CONFIG)
    atomic_write_bytes(out / EVENTS_FILE, event_file_bytes(time.time()))


def write_vec(out_dir: str | os.PathLike[str], weights: Any,
              vocabulary: Sequence[str], values: Sequence[str] | None = None) -> None:
    """Write ``vectors.vec``: the rows of ``vectors.tsv`` in the word2vec/fastText text
    format, ``N D`` then ``token v1 ... vD`` per line.

    Values are ``str(numpy.float32)``, so they parse back to the same float32; tokens are
    written as they are (UTF-8; undecodable bytes kept via ``surrogateescape``).

    Args:
        out_dir (str | os.PathLike): folder to write into.
        weights (np.ndarray | torch.Tensor): ``(V, D)`` embedding table.
        vocabulary (Sequence[str]): tokens in id order; row 0, the padding, is left out.
        values (Sequence[str] | None): :func:`value_rows` of the table, when the caller
            has them. Default: ``None`` (printed here).

    Raises:
        ValueError: the table has fewer rows than the vocabulary, or a token is empty or
            holds whitespace (`` \\t\\n\\v\\f\\r``), which the format cannot represent.
    """
    table = _table(weights, vocabulary)
    bad = [t for t in vocabulary[1:] if not t or not _VEC_SEPARATORS.isdisjoint(t)]
    if bad:
        raise ValueError(
            f"{VEC_FILE} cannot hold a token that is empty or contains whitespace (its "
            f"fields are space-separated). Received: {len(bad)} such tokens, e.g. "
            f"{bad[:3]!r}; use a vocabulary from whitespace splitting."
        )
    rows = range(1, len(vocabulary))
    lines = [f"{len(rows)} {table.shape[1]}\n"]
    values = value_rows(table) if values is None else values
    lines += [vocabulary[i] + " " + values[i].replace("\t", " ") + "\n" for i in rows]
    atomic_write_text(Path(out_dir) / VEC_FILE, "".join(lines))
