"""The vectorizer's compiled text kernels (``kernels.c``): standardization, token
counting and vocabulary lookup over packed byte buffers, called through ``ctypes``.

No torch: the text engine depends on NumPy and Arrow only.  Without a C compiler
:func:`available` is false and :class:`~embeddings.text.TextVectorization` uses its
Arrow formulation, which gives the same ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embeddings.native import NativeLibrary

LIBRARY = NativeLibrary(Path(__file__).with_name("kernels.c"), {
    "standardize": ("ppippm", None),
    "count_tokens": ("ppipppi", "i"),
    "build_vocab_table": ("pppipi", None),
    "encode": ("ppimppppipip", None),
})

# Bits of the ``standardize`` kernel's mode, per built-in standardization.
STANDARDIZE_BITS = {"none": 0, "lower": 1, "strip_punctuation": 4, "lower_and_strip_punctuation": 5,
                    "tutorial": 7}


def available() -> bool:
    """Whether the text kernels are compiled and loaded (compiling them on the first call)."""
    return LIBRARY.available()


def _pack(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one uint8 buffer and ``(n + 1,)`` int64 offsets (Arrow's string layout)."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=offsets[1:])
    data = np.frombuffer(b"".join(texts) or b"\0", dtype=np.uint8)
    return data, offsets


def standardize(texts: list[bytes], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in standardization of every text at once, as one byte buffer.

    Returns:
        tuple[np.ndarray, np.ndarray]: the uint8 data and the ``(n + 1,)`` int64 offsets of
        the standardized texts (Arrow's string layout).
    """
    data, offsets = _pack(texts)
    out = np.empty(len(data), dtype=np.uint8)
    out_offsets = np.empty_like(offsets)
    LIBRARY.call("standardize", data.ctypes.data, offsets.ctypes.data, len(texts),
                 out.ctypes.data, out_offsets.ctypes.data, STANDARDIZE_BITS[mode])
    return out[: out_offsets[-1]], out_offsets


def count_tokens(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Count the whitespace-separated tokens of packed texts (``bytes.split()`` rules).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: start, length and count of each
        distinct token (starts index ``data``), in no particular order.
    """
    n = len(offsets) - 1
    capacity = 1 << 18
    while True:
        start = np.full(capacity, -1, dtype=np.int64)
        length = np.zeros(capacity, dtype=np.int64)
        count = np.zeros(capacity, dtype=np.int64)
        found = LIBRARY.call("count_tokens", data.ctypes.data, offsets.ctypes.data, n,
                             start.ctypes.data, length.ctypes.data, count.ctypes.data, capacity)
        if found >= 0:
            used = start >= 0
            return start[used], length[used], count[used]
        capacity *= 4


class VocabularyTable:
    """A vocabulary's token -> id hash table for :func:`encode` (ids are list positions)."""

    def __init__(self, tokens: list[bytes]) -> None:
        self.blob, offsets = _pack(tokens)
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
    data, offsets = _pack(texts)
    out = np.zeros((len(texts), length), dtype=np.int64)
    scratch = np.empty(max(1, int(np.diff(offsets).max(initial=0))), dtype=np.uint8)
    LIBRARY.call("encode", data.ctypes.data, offsets.ctypes.data, len(texts),
                 STANDARDIZE_BITS[mode], table.blob.ctypes.data, table.starts.ctypes.data,
                 table.lengths.ctypes.data, table.slots.ctypes.data, table.capacity,
                 out.ctypes.data, length, scratch.ctypes.data)
    return out
