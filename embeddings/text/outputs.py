"""Token ids to the layer's outputs, as TensorFlow shapes them.

``int``: each row's ids, padded with 0 on the right or cut to the sequence length (or to
the longest row), or a list of rows when ``ragged``.  ``multi_hot``, ``count`` and
``tf_idf``: a ``(rows, depth)`` array per batch, int64 as TensorFlow returns them except
float32 for ``tf_idf`` (count times the token's IDF weight, in every cell: ``0 * inf`` is
``nan`` there too).  ``one_hot``: a vector per token.  The ``compiled_*`` functions do the
same straight from the texts in the compiled kernels, a chunk of rows per thread.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embeddings import arrow
from embeddings.text import chunks, native
from embeddings.text.tokens import NGRAM_SEPARATOR, Rows


def ids_of(rows: Rows, index: pa.Array, start: int, int_mode: bool) -> np.ndarray:
    """Ids of the flat tokens: learned tokens (``index``) from ``start``, others the OOV id
    ``start - 1``; ``''`` (the mask) is 0 in ``int`` mode and -1 (dropped) in the others."""
    found = pc.index_in(rows.values, value_set=index)  # null: not learned
    ids = arrow.to_numpy(found, fill=-1).astype(np.int64) + start
    mask = arrow.to_numpy(pc.binary_length(rows.values)) == 0
    ids[mask] = 0 if int_mode else -1
    return ids


def sequences(ids: np.ndarray, offsets: np.ndarray, batched: bool, scalar: bool,
              length: int | None, ragged: bool, split: bool) -> np.ndarray | list[np.ndarray]:
    """``int`` output from each row's ids (rows ``offsets[i]:offsets[i + 1]``)."""
    lengths = np.diff(offsets)
    if ragged and split:
        cut = [ids[a:b][:length] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        return cut if batched else cut[0]
    longest = int(lengths.max(initial=0))
    # Keras pads split rows; rows of strings (split=None) it only cuts when ragged.
    width = longest if length is None or (ragged and length > longest) else length
    out = np.zeros((len(lengths), width), dtype=np.int64)
    kept = np.minimum(lengths, width)
    row_of = np.repeat(np.arange(len(lengths)), kept)
    position = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
    out[row_of, position] = ids[np.repeat(offsets[:-1], kept) + position]
    if scalar and length is None:
        return out[0, 0]
    return out if batched else out[0]


def vectors(ids: np.ndarray, offsets: np.ndarray, batched: bool, output_mode: str,
            depth: int, idf: np.ndarray | None) -> np.ndarray:
    """``multi_hot``, ``count``, ``tf_idf`` or ``one_hot`` output from each row's ids."""
    lengths = np.diff(offsets)
    if output_mode == "one_hot":  # split=None: a vector per token, as tf.one_hot
        out = np.zeros((len(ids), depth), dtype=np.int64)
        hot = (ids >= 0) & (ids < depth)
        out[np.nonzero(hot)[0], ids[hot]] = 1
        width = int(lengths[0]) if batched and len(lengths) else 1
        if batched and width != 1:  # (N, m) tokens: (N, m, depth)
            return out.reshape(len(lengths), width, depth)
        return out  # (M,) tokens or (N, 1): one vector each
    n = len(lengths)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
    keep = (ids >= 0) & (ids < depth)  # '' (the mask) is never counted
    cells = row_of[keep] * depth + ids[keep]  # (K,): flat positions in the (N, depth) out
    if output_mode == "count":
        out = np.bincount(cells, minlength=n * depth).reshape(n, depth)
    elif output_mode == "multi_hot":
        out = np.zeros((n, depth), dtype=np.int64)
        out.reshape(-1)[cells] = 1
    else:
        assert idf is not None
        found, counts = np.unique(cells, return_counts=True)
        out = np.zeros((n, depth), dtype=np.float32)
        out.reshape(-1)[found] = counts
        out *= idf[:depth]  # every cell, as TensorFlow multiplies them
    return out if batched else out[0]


def compiled_vectors(texts: list[bytes], mode: str, table: native.VocabularyTable,
                     widths: tuple[int, ...], unknown: int, output_mode: str, depth: int,
                     idf: np.ndarray | None) -> np.ndarray:
    """``multi_hot``, ``count`` or ``tf_idf`` rows of whitespace-split texts, each thread
    writing its chunk's rows of the output."""
    weights = None if idf is None else idf[:depth]
    finite = weights is not None and bool(np.isfinite(weights).all())
    tf_idf = output_mode == "tf_idf"
    out = np.zeros((len(texts), depth), dtype=np.float32 if tf_idf else np.int64)
    cuts = chunks.bounds(len(texts), chunks.MIN_COMPILED_CHUNK)
    chunks.threads(lambda i: native.vectorize_ngrams(
        texts[cuts[i]:cuts[i + 1]], mode, table, widths, NGRAM_SEPARATOR, unknown, output_mode,
        out[cuts[i]:cuts[i + 1]], weights if finite else None), len(cuts) - 1)
    if tf_idf and not finite:  # the kernel left counts: TensorFlow's 0 * inf is nan
        out *= weights
    return out


def compiled_ids(texts: list[bytes], mode: str, table: native.VocabularyTable,
                 widths: tuple[int, ...], unknown: int, limit: int | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Ids of every text's n-grams (at most ``limit`` each) and their ``(N + 1,)`` offsets."""
    parts = chunks.per_chunk(lambda c: native.encode_ngrams(
        c, mode, table, widths, NGRAM_SEPARATOR, unknown, limit), texts,
        chunks.MIN_COMPILED_CHUNK)
    ends = np.cumsum([p[1][-1] for p in parts])
    offsets = np.concatenate([[0]] + [p[1][1:] + start for p, start in
                                      zip(parts, np.concatenate([[0], ends[:-1]]),
                                          strict=True)])
    return np.concatenate([p[0] for p in parts]), offsets.astype(np.int64)


def compiled_sequences(texts: list[bytes], mode: str, table: native.VocabularyTable,
                       length: int) -> np.ndarray:
    """``(N, length)`` ids of the first ``length`` tokens, reading only as much of each text
    as they need (the tutorial's path)."""
    parts = chunks.per_chunk(lambda c: native.encode(c, mode, table, length), texts,
                             chunks.MIN_COMPILED_CHUNK)
    return np.concatenate(parts) if parts else np.zeros((0, length), dtype=np.int64)
