"""The vocabulary: counting tokens over ``adapt`` batches, ranking them as Keras does,
inverse document frequencies, and checking a given vocabulary (``PARITY.md`` section 4).

Keras's ``IndexLookup`` (on TensorFlow) counts tokens in a hash table, drops ``''`` and
``'[UNK]'``, sorts by count then token bytes, both descending
(``np.lexsort((tokens, counts))[::-1]``), and keeps ``max_tokens`` minus the special
ids.  In ``tf_idf`` mode it also counts, per token, the documents holding it, and
weighs a token ``log(1 + documents / (1 + its documents))`` in float64, cast to
float32; the OOV id gets the float32 mean of those weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embeddings import arrow
from embeddings.text.tokens import Rows, to_bytes

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
TIE_ORDER = "descending"  # tokens of equal count: greater bytes first (np.lexsort, reversed)
MAX_PARTS = 16  # counted batches (or threads' parts) held before they are merged into one
_PAD = PAD_TOKEN.encode()
_OOV = OOV_TOKEN.encode()


@dataclass
class Counts:
    """Token counts (and, for ``tf_idf``, document counts) gathered batch by batch."""

    documents: bool
    parts: list[pa.Table] = field(default_factory=list)
    num_documents: int = 0

    def add_rows(self, rows: Rows) -> None:
        """Count the tokens of one batch of rows (a row is a document)."""
        if len(rows.values) == 0:
            self.num_documents += len(rows.lengths)
            return
        encoded = pc.dictionary_encode(rows.values)
        index = arrow.to_numpy(encoded.indices).astype(np.int64)
        size = len(encoded.dictionary)
        columns = {"token": encoded.dictionary,
                   "count": arrow.numbers(np.bincount(index, minlength=size))}
        if self.documents:
            row_of = np.repeat(np.arange(len(rows.lengths), dtype=np.int64), rows.lengths)
            pairs = pc.unique(arrow.numbers(row_of * size + index)).to_numpy()  # (row, token) once
            columns["documents"] = arrow.numbers(np.bincount(pairs % size, minlength=size))
        self.parts.append(pa.table(columns))
        self.num_documents += len(rows.lengths)
        self._compact()

    def add_counted(self, counted: list[tuple[pa.Array, np.ndarray, np.ndarray]],
                    num_documents: int, disjoint: bool) -> None:
        """Add counts made elsewhere (the compiled kernels) over ``num_documents`` texts:
        (tokens, occurrences, documents) per thread; ``disjoint`` when the threads counted
        disjoint sets of tokens (one table), else each is a part that :meth:`ranked` merges."""
        for group in [counted] if disjoint else [[c] for c in counted]:
            columns = {"token": pa.chunked_array([c[0] for c in group], pa.large_binary()),
                       "count": pa.chunked_array([arrow.numbers(c[1]) for c in group], pa.int64())}
            if self.documents:
                columns["documents"] = pa.chunked_array([arrow.numbers(c[2]) for c in group],
                                                        pa.int64())
            self.parts.append(pa.table(columns))
        self.num_documents += num_documents
        self._compact()

    def empty(self) -> bool:
        """Whether no token at all was counted (Keras then keeps the old vocabulary)."""
        return not any(len(p) for p in self.parts)

    def _merged(self) -> pa.Table:
        """One table of every part's counts, a row per distinct token."""
        table = pa.concat_tables(self.parts)
        if len(self.parts) > 1:  # the same token counted in several batches: add them up
            encoded = pc.dictionary_encode(table["token"]).combine_chunks()
            index = arrow.to_numpy(encoded.indices)
            size = len(encoded.dictionary)
            # float64 sums of integers are exact below 2**53 occurrences
            table = pa.table({"token": encoded.dictionary, **{
                name: arrow.numbers(np.bincount(index, weights=arrow.to_numpy(table[name]),
                                           minlength=size).astype(np.int64))
                for name in table.column_names if name != "token"}})
        return table

    def _compact(self) -> None:
        """Merge the parts once :data:`MAX_PARTS` have gathered, so that adapting batch by
        batch (a large corpus read in chunks) holds each distinct token about once, not
        once per batch."""
        if len(self.parts) >= MAX_PARTS:
            self.parts = [self._merged()]

    def ranked(self, limit: int | None) -> tuple[list[bytes], np.ndarray | None]:
        """The learned tokens, most frequent first (ties: greater bytes first), at most
        ``limit``; and their document counts when counting documents."""
        table = self._merged()
        specials = arrow.binary([_PAD, _OOV])
        table = table.filter(pc.invert(pc.is_in(table["token"], value_set=specials)))
        if limit is not None and limit < len(table):
            # Only tokens counted as often as the limit-th most frequent can enter.
            counts = arrow.to_numpy(table["count"])
            floor = np.partition(counts, len(counts) - limit)[len(counts) - limit]
            table = table.filter(arrow.numbers(counts >= floor))
        order = pc.sort_indices(table, sort_keys=[("count", "descending"),
                                                  ("token", TIE_ORDER)])
        if limit is not None:
            order = order[:limit]
        table = table.take(order)
        tokens = table["token"].to_pylist()
        documents = arrow.to_numpy(table["documents"]) if self.documents else None
        return tokens, documents


def inverse_document_frequency(documents: np.ndarray, num_documents: int) -> np.ndarray:
    """Keras's IDF: ``log(1 + n / (1 + df))`` in float64, cast to float32 (measured
    equal to TensorFlow's on 300 random cases)."""
    return np.log(1 + num_documents / (1 + documents.astype(np.float64))).astype(np.float32)


def oov_weight(weights: np.ndarray) -> np.float32:
    """The OOV id's IDF: the mean of the learned weights, rounded once to float32.

    TensorFlow's ``reduce_mean`` sums in float32 in an order set by Eigen's packet width
    and thread count, so it can differ from this exactly rounded mean by up to 2 ulp
    (measured on 400 vocabularies of 1 to 1,000,000 tokens).
    """
    if len(weights) == 0:
        return np.float32(np.nan)  # TensorFlow's mean of nothing
    return np.float32(np.mean(weights, dtype=np.float64))


def read_file(path: str | os.PathLike[str]) -> list[bytes]:
    """Tokens of a vocabulary file as TensorFlow's ``TextFileInitializer`` reads them:
    lines split on ``\\n``, a trailing ``\\r`` dropped, no empty line, no repeat."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    tokens = [line.removesuffix(b"\r") for line in lines]
    if b"" in tokens:
        raise ValueError(f"vocabulary file {os.fspath(path)!r} has an empty line (line "
                         f"{tokens.index(b'') + 1}); TensorFlow refuses it too. Remove it.")
    return tokens


def read_vocabulary_file(path: str | os.PathLike[str], max_tokens: int | None, start: int
                         ) -> list[bytes]:
    """A vocabulary file's tokens (:func:`read_file`), refused when repeated or too many for
    ``max_tokens`` with ``start`` special ids."""
    learned = read_file(path)
    if max_tokens is not None and start + len(learned) > max_tokens:
        raise ValueError(f"The vocabulary file has {len(learned)} tokens, more than "
                         f"max_tokens={max_tokens} allows with {start} special ids.")
    check_tokens(learned, [], None)  # repeats are refused, as TensorFlow does
    return learned


def check_tokens(vocabulary: Sequence[Any], specials: list[bytes],
                 max_tokens: int | None) -> tuple[list[bytes], bool]:
    """A given vocabulary as learned tokens, with Keras's checks.

    Returns:
        tuple[list[bytes], bool]: the tokens after the special ones, and whether the
        vocabulary started with the special tokens (then they were removed).

    Raises:
        ValueError: empty, a repeated token, ``''`` out of place, or too many tokens.
    """
    tokens = [to_bytes(t) for t in vocabulary]
    if not tokens:
        raise ValueError("Cannot set an empty vocabulary. Received: vocabulary=[]")
    found = tokens[: len(specials)] == specials
    learned = tokens[len(specials):] if found else tokens
    if len(set(learned)) != len(learned):
        seen: set[bytes] = set()
        repeated = sorted({t for t in learned if t in seen or seen.add(t)})  # type: ignore[func-returns-value]
        raise ValueError("The vocabulary has repeated tokens; make them unique. Received: "
                         f"repeated={[t.decode('utf-8', 'replace') for t in repeated[:5]]}")
    if _PAD in learned:
        shown = [s.decode() for s in specials]
        raise ValueError(
            "The vocabulary may hold the mask token '' only at its start, in this order: "
            f"{shown}, or not at all. Received: '' at index {tokens.index(_PAD)}")
    size = len(specials) + len(learned)
    if max_tokens is not None and size > max_tokens:
        raise ValueError(f"The vocabulary has {size} tokens with the special ones, more than "
                         f"max_tokens={max_tokens}. Raise max_tokens or pass fewer tokens.")
    return learned, found


def given_idf(idf_weights: Any, vocabulary_length: int, found_specials: bool, token_start: int,
              pad_to: int | None) -> np.ndarray:
    """IDF weights given with a vocabulary, padded as Keras pads them: in front (unless the
    vocabulary had its special tokens) with their ``np.average``, behind with zeros up
    to ``pad_to``; float32."""
    weights = np.asarray(idf_weights)
    if weights.ndim != 1 or len(weights) != vocabulary_length:
        raise ValueError("idf_weights must be a 1-D array as long as the vocabulary. Received: "
                         f"idf_weights of shape {weights.shape} for {vocabulary_length} tokens")
    if not np.issubdtype(weights.dtype, np.number):
        raise TypeError(f"idf_weights must be numbers. Received: dtype={weights.dtype}")
    front = 0 if found_specials else token_start
    back = 0 if pad_to is None else max(0, pad_to - front - len(weights))
    front_value = 0 if found_specials else np.average(weights)
    padded = np.pad(weights, (front, back), "constant", constant_values=(front_value, 0))
    return padded.astype(np.float32)
