"""The vectorizer's compiled text kernels (``kernels.c``): standardization, whitespace
tokens and n-grams, their counting and vocabulary lookup over packed byte buffers, called
through ``ctypes``.

No torch: the text engine depends on NumPy and Arrow only.  Without a C compiler
:func:`available` is false and :class:`~embeddings.text.TextVectorization` uses its
Arrow formulation, which gives the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from embeddings.native import NativeLibrary

LIBRARY = NativeLibrary(Path(__file__).with_name("kernels.c"), {
    "standardize": ("ppippm", None),
    "count_ngrams": ("ppimpim" "ii" "pipi" "pppppp", "i"),
    "rehash": ("pipi", None),
    "build_vocab_table": ("pppipi", None),
    "encode": ("ppimppppipip", None),
    "encode_ngrams": ("ppimpimppppiiippppppp", None),
    "vectorize_ngrams": ("ppimpim" "pppp" "ii" "m" "i" "ppp" "ppppp", None),
})

# Bits of the ``standardize`` kernel's mode, per built-in standardization.
STANDARDIZE_BITS = {"none": 0, "lower": 1, "strip_punctuation": 4, "lower_and_strip_punctuation": 5,
                    "tutorial": 7}


def available() -> bool:
    """Whether the text kernels are compiled and loaded (compiling them on the first call)."""
    return LIBRARY.available()


def offsets(lengths: Iterable[int], count: int) -> np.ndarray:
    """``(count + 1,)`` int64 offsets of ``count`` consecutive pieces of these lengths."""
    out = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=out[1:])
    return out


def pack(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one uint8 buffer and ``(n + 1,)`` int64 offsets (Arrow's string layout)."""
    data = np.frombuffer(b"".join(texts) or b"\0", dtype=np.uint8)
    return data, offsets(map(len, texts), len(texts))


def standardize(texts: list[bytes], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in standardization of every text at once, as one byte buffer.

    Returns:
        tuple[np.ndarray, np.ndarray]: the uint8 data and the ``(n + 1,)`` int64 offsets of
        the standardized texts (Arrow's string layout).
    """
    data, offsets = pack(texts)
    out = np.empty(len(data), dtype=np.uint8)
    out_offsets = np.empty_like(offsets)
    LIBRARY.call("standardize", data.ctypes.data, offsets.ctypes.data, len(texts),
                 out.ctypes.data, out_offsets.ctypes.data, STANDARDIZE_BITS[mode])
    return out[: out_offsets[-1]], out_offsets


class _Scratch:
    """Buffers for one standardized text of the batch at a time (its bytes, its tokens,
    one n-gram), sized for the longest text."""

    def __init__(self, offsets: np.ndarray, widths: tuple[int, ...]) -> None:
        longest = int(np.diff(offsets).max(initial=0)) + 1
        self.text = np.empty(longest, dtype=np.uint8)
        self.ngram = np.empty(longest + max(widths), dtype=np.uint8)
        self.starts = np.empty(longest // 2 + 1, dtype=np.int64)
        self.lengths = np.empty(longest // 2 + 1, dtype=np.int64)
        self.hashes = np.empty(longest // 2 + 1, dtype=np.uint64)

    def args(self) -> tuple[int, int, int, int, int]:
        return (self.text.ctypes.data, self.ngram.ctypes.data, self.starts.ctypes.data,
                self.lengths.ctypes.data, self.hashes.ctypes.data)


class _CountTable:
    """The n-gram table of :func:`count_ngrams`: the arena of n-gram bytes and ``(cap, 6)``
    int64 slots (start, length, count, documents, last text, hash; start -1: empty)."""

    def __init__(self, capacity: int, arena: np.ndarray) -> None:
        self.capacity = capacity
        self.arena = arena
        self.slots = np.full((capacity, 6), -1, dtype=np.int64)

    def grown(self) -> _CountTable:
        """A table four times larger holding the same n-grams."""
        bigger = _CountTable(self.capacity * 4, self.arena)
        LIBRARY.call("rehash", self.slots.ctypes.data, self.capacity, bigger.slots.ctypes.data,
                     bigger.capacity)
        return bigger


def count_ngrams(packed: tuple[np.ndarray, np.ndarray], mode: str, widths: tuple[int, ...],
                 separator: bytes, part: int = 0, parts: int = 1
                 ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Count the n-grams of packed texts (:func:`pack`; standardized with ``mode``, split on
    whitespace, the tokens of an n-gram joined by the one byte ``separator``) whose hash
    falls in partition ``part`` of ``parts``: the partitions of the same texts hold
    disjoint n-grams, so threads can share one packing.

    Returns:
        tuple[pa.Array, np.ndarray, np.ndarray]: each distinct n-gram (a ``large_binary``
        array, in no particular order), its number of occurrences and the number of
        texts holding it.
    """
    data, text_offsets = packed
    scratch = _Scratch(text_offsets, widths)
    width = np.asarray(widths, dtype=np.int64)
    table = _CountTable(1 << 16, np.empty(max(1 << 16, len(data) // 2), dtype=np.uint8))
    state = np.zeros(5, dtype=np.int64)  # resume at (text, width, position); distinct; used
    while True:
        status = LIBRARY.call("count_ngrams", data.ctypes.data, text_offsets.ctypes.data,
                              len(text_offsets) - 1,
                              STANDARDIZE_BITS[mode], width.ctypes.data, len(widths),
                              ord(separator), part, parts, table.arena.ctypes.data,
                              len(table.arena),
                              table.slots.ctypes.data, table.capacity, *scratch.args(),
                              state.ctypes.data)
        if status == 0:
            break
        if status == -1:
            table = table.grown()
        else:  # slots hold offsets into the arena, so a larger copy keeps them valid
            table.arena = np.concatenate([table.arena, np.empty(3 * len(table.arena),
                                                                dtype=np.uint8)])
    start, count, documents = table.slots[:, 0], table.slots[:, 2], table.slots[:, 3]
    used = np.nonzero(start >= 0)[0]
    order = used[np.argsort(start[used])]  # the arena holds the n-grams in this order
    bounds = np.append(start[order], state[4])
    grams = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(order),
                                             [None, pa.py_buffer(bounds),
                                              pa.py_buffer(table.arena[:state[4]])])
    return grams, count[order], documents[order]


class VocabularyTable:
    """A vocabulary's token -> id hash table for :func:`encode` (ids are list positions)."""

    def __init__(self, tokens: list[bytes]) -> None:
        self.blob, offsets = pack(tokens)
        self.starts = np.ascontiguousarray(offsets[:-1])
        self.lengths = np.diff(offsets)
        self.capacity = 1 << max(4, (2 * len(tokens)).bit_length())
        self.slots = np.full(self.capacity, -1, dtype=np.int64)
        LIBRARY.call("build_vocab_table", self.blob.ctypes.data, self.starts.ctypes.data,
                     self.lengths.ctypes.data, len(tokens), self.slots.ctypes.data,
                     self.capacity)


def encode(texts: list[bytes], mode: str, table: VocabularyTable, length: int) -> np.ndarray:
    """Standardize, split and look up ``texts``: ``(n, length)`` int64 ids, 0-padded on the
    right, 1 for unknown tokens; only each text's first ``length`` tokens are read."""
    data, offsets = pack(texts)
    out = np.zeros((len(texts), length), dtype=np.int64)
    scratch = np.empty(max(1, int(np.diff(offsets).max(initial=0))), dtype=np.uint8)
    LIBRARY.call("encode", data.ctypes.data, offsets.ctypes.data, len(texts),
                 STANDARDIZE_BITS[mode], table.blob.ctypes.data, table.starts.ctypes.data,
                 table.lengths.ctypes.data, table.slots.ctypes.data, table.capacity,
                 out.ctypes.data, length, scratch.ctypes.data)
    return out


def encode_ngrams(texts: list[bytes], mode: str, table: VocabularyTable, widths: tuple[int, ...],
                  separator: bytes, unknown: int, limit: int | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Standardize, split and look up the n-grams of ``texts`` (width by width, left to
    right), at most ``limit`` per text.

    Returns:
        tuple[np.ndarray, np.ndarray]: the int64 ids (``unknown`` for n-grams not in the
        table) and the ``(n + 1,)`` offsets of each text's ids among them.
    """
    data, offsets = pack(texts)
    scratch = _Scratch(offsets, widths)
    width = np.asarray(widths, dtype=np.int64)
    tokens = (np.diff(offsets) + 1) // 2  # (n,): at most this many tokens per text
    room = len(widths) * tokens if limit is None else np.minimum(len(widths) * tokens, limit)
    ids = np.empty(max(1, int(room.sum())), dtype=np.int64)
    out_offsets = np.empty(len(texts) + 1, dtype=np.int64)
    LIBRARY.call("encode_ngrams", data.ctypes.data, offsets.ctypes.data, len(texts),
                 STANDARDIZE_BITS[mode], width.ctypes.data, len(widths), ord(separator),
                 table.blob.ctypes.data,
                 table.starts.ctypes.data, table.lengths.ctypes.data, table.slots.ctypes.data,
                 table.capacity, unknown, -1 if limit is None else limit, ids.ctypes.data,
                 out_offsets.ctypes.data, *scratch.args())
    return ids[: out_offsets[-1]], out_offsets


# The kinds of :func:`vectorize_ngrams`' output, as ``kernels.c`` numbers them.
VECTOR_KINDS = {"count": 0, "multi_hot": 1, "tf_idf": 2}


def vectorize_ngrams(texts: list[bytes], mode: str, table: VocabularyTable,
                     widths: tuple[int, ...], separator: bytes, unknown: int, kind: str,
                     out: np.ndarray, idf: np.ndarray | None) -> None:
    """Write the ``multi_hot``, ``count`` or ``tf_idf`` rows of ``texts`` into ``out``.

    Args:
        out (np.ndarray): zeros, ``(len(texts), depth)``, C-contiguous: int64 for
            ``count`` and ``multi_hot``, float32 for ``tf_idf``.
        idf (np.ndarray | None): float32 weights for ``tf_idf`` (each counted cell is
            multiplied by its weight), or ``None`` to leave the counts.
    """
    data, offsets = pack(texts)
    scratch = _Scratch(offsets, widths)
    width = np.asarray(widths, dtype=np.int64)
    touched = np.empty(len(widths) * len(scratch.starts), dtype=np.int64)
    weights = None if idf is None else np.ascontiguousarray(idf, dtype=np.float32)
    LIBRARY.call("vectorize_ngrams", data.ctypes.data, offsets.ctypes.data, len(texts),
                 STANDARDIZE_BITS[mode], width.ctypes.data, len(widths), ord(separator),
                 table.blob.ctypes.data, table.starts.ctypes.data, table.lengths.ctypes.data,
                 table.slots.ctypes.data, table.capacity, unknown, VECTOR_KINDS[kind],
                 out.shape[1], out.ctypes.data, 0 if weights is None else weights.ctypes.data,
                 touched.ctypes.data, *scratch.args())
