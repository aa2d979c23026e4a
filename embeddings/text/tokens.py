"""Texts to rows of tokens: TensorFlow's standardize, split and n-gram steps, on bytes.

TensorFlow's string ops never decode UTF-8, so every built-in rule here is a byte rule
(``PARITY.md`` sections 1-3).  Input shapes follow Keras's ``TextVectorization``:

* with a ``split``, each string is one document; the input is a scalar, ``(N,)`` or
  ``(N, 1)``, and a scalar gives one un-batched row;
* with ``split=None`` the strings are the tokens and the input's **last** axis is the
  sequence axis: ``(N, K)`` gives N rows of K tokens, and a ``(N,)`` list is **one**
  row of N tokens (TensorFlow's ``ngrams`` then joins neighbouring strings too).

A row's n-grams come width by width in the order given, each width left to right,
joined with one space (``tf.strings.ngrams(..., separator=" ")``); n-grams never reach
past the end of a row, so none is made with padding.
"""

from __future__ import annotations

import codecs
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embeddings import arrow
from embeddings.text import native

TextLike = str | bytes
STANDARDIZE_MODES = ("tutorial", "lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT_MODES = ("whitespace", "character")

_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_PUNCTUATION = string.punctuation.encode()  # the 32 bytes of Keras's regex class
NGRAM_SEPARATOR = b" "  # tf.strings.ngrams(..., separator=" "), as Keras calls it


def _tutorial(b: bytes) -> bytes:
    return b.translate(_LOWER).replace(b"<br />", b" ").translate(None, _PUNCTUATION)


def _lower_and_strip(b: bytes) -> bytes:
    return b.translate(_LOWER, _PUNCTUATION)


def _lower(b: bytes) -> bytes:
    return b.translate(_LOWER)


def _strip(b: bytes) -> bytes:
    return b.translate(None, _PUNCTUATION)


# The built-in standardizations as byte formulas (PARITY.md sections 1-2): TensorFlow's
# lowercasing maps only A-Z, and its RE2 punctuation class matches exactly the 32 ASCII
# punctuation bytes, never a byte of invalid UTF-8.
STANDARDIZERS: dict[str, Callable[[bytes], bytes]] = {
    "tutorial": _tutorial,
    "lower_and_strip_punctuation": _lower_and_strip,
    "lower": _lower,
    "strip_punctuation": _strip,
}


def to_bytes(text: object, encoding: str = "utf-8") -> bytes:
    """One text as the bytes TensorFlow holds: ``str`` is encoded (``surrogateescape``
    brings back bytes that were decoded that way), ``bytes`` stay as they are."""
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode(encoding, "surrogateescape")
    raise TypeError(f"texts must be str or bytes. Received: a {type(text).__name__}: {text!r:.80}")


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it, else a ``ValueError`` naming it."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding must be a text encoding Python knows, e.g. 'utf-8'. "
                         f"Received: encoding={encoding!r}") from None
    return encoding


@dataclass(frozen=True)
class Texts:
    """A batch of texts as flat bytes plus the shape they came in (rank 0, 1 or 2)."""

    flat: list[bytes]
    shape: tuple[int, ...]


def as_texts(inputs: Any, encoding: str = "utf-8") -> Texts:
    """Normalize what a caller passes (a string, nested lists, a NumPy string array, an
    Arrow array or any sequence of strings) into :class:`Texts`.

    Raises:
        TypeError: an element is not a string.
        ValueError: rank above 2, or rows of different lengths.
    """
    if isinstance(inputs, (str, bytes)):
        return Texts([to_bytes(inputs, encoding)], ())
    if isinstance(inputs, (pa.Array, pa.ChunkedArray)):
        inputs = inputs.to_pylist()
    if isinstance(inputs, np.ndarray):
        if inputs.ndim > 2:
            raise ValueError(f"texts must have rank 0, 1 or 2. Received: shape={inputs.shape}")
        return Texts([to_bytes(t, encoding) for t in inputs.ravel().tolist()], inputs.shape)
    if not isinstance(inputs, Iterable):
        raise TypeError(f"texts must be a string or a sequence of strings. Received: "
                        f"{type(inputs).__name__}")
    items = list(inputs)
    if items and isinstance(items[0], (list, tuple, np.ndarray)):
        rows = [list(r.tolist() if isinstance(r, np.ndarray) else r) for r in items]
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError("rows of texts must all have the same length (a dense array). "
                             f"Received: row lengths {sorted(widths)[:5]}")
        flat = [to_bytes(t, encoding) for r in rows for t in r]
        return Texts(flat, (len(rows), widths.pop()))
    return Texts([to_bytes(t, encoding) for t in items], (len(items),))


def adapt_batches(data: Any, batch_size: int | None, steps: int | None) -> Iterator[Any]:
    """The batches ``adapt`` counts, as Keras reads ``data``: a list, array or other
    sequence (a ``datasets`` column) is one batch of shape ``(N, 1)`` (or ``batch_size``
    rows at a time, which changes nothing counted); any other iterable yields its own
    batches, each counted as given; ``steps`` stops after that many batches."""
    if type(data).__name__ in ("Dataset", "IterableDataset") and \
            hasattr(data, "column_names"):
        raise ValueError("adapt reads texts, not a datasets.Dataset of rows: pass its "
                         f"text column, e.g. ds['text']. Received: columns "
                         f"{data.column_names}")
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        yield data
        return
    is_array = isinstance(data, (list, tuple, np.ndarray, pa.Array, pa.ChunkedArray,
                                 Sequence)) or (hasattr(data, "__len__") and
                                                hasattr(data, "__getitem__"))
    if not is_array:  # an iterable of batches, each counted as Keras counts it
        for i, batch in enumerate(data):
            if steps is not None and i >= steps:
                return
            yield batch
        return
    texts = as_texts(data if isinstance(data, (np.ndarray, list, tuple)) else list(data))
    rows = np.asarray(texts.flat, dtype=object)
    width = texts.shape[1] if len(texts.shape) == 2 else 1
    rows = rows.reshape(-1, width)  # Keras adapts a 1-D array as (N, 1)
    size = batch_size or max(1, len(rows))
    for i, start in enumerate(range(0, max(1, len(rows)), size)):
        if steps is not None and i >= steps:
            return
        yield rows[start:start + size]



@dataclass(frozen=True)
class Rows:
    """Tokens of a batch: flat ``large_binary`` values cut into rows by ``offsets``.

    ``batched`` is false when the input had no batch axis over the rows (one row, and
    the output drops the batch axis); ``scalar`` when it was one string with
    ``split=None`` (the output of ``int`` mode is then a scalar).
    """

    values: pa.Array
    offsets: np.ndarray  # (R + 1,) int64
    batched: bool
    scalar: bool = False

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _strings(values: Any, encoding: str) -> list[bytes]:
    """A callable's result (array or nested sequence of str/bytes) as flat bytes."""
    out = np.asarray(values, dtype=object).ravel().tolist()
    return [to_bytes(v.decode(encoding, "surrogateescape") if isinstance(v, np.bytes_) else
                     str(v) if isinstance(v, np.str_) else v, encoding) for v in out]


def standardize(texts: Texts, mode: str | Callable[..., Any] | None, encoding: str) -> list[bytes]:
    """The standardized bytes of every text.

    A callable gets a NumPy array of ``str`` in the input's shape (bytes decoded with
    ``encoding``, ``surrogateescape`` for bytes it cannot decode), as Keras hands it on
    its non-TensorFlow backends, and returns strings of the same shape.
    """
    if mode is None:
        return texts.flat
    if isinstance(mode, str):
        if native.available():
            data, offsets = native.standardize(texts.flat, mode)
            raw = data.tobytes()
            return [raw[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(),
                                             strict=True)]
        return [STANDARDIZERS[mode](t) for t in texts.flat]
    decoded = np.array([t.decode(encoding, "surrogateescape") for t in texts.flat],
                       dtype=str).reshape(texts.shape)
    result = _strings(mode(decoded), encoding)
    if len(result) != len(texts.flat):
        raise ValueError(f"the standardize callable must return one string per input string. "
                         f"Received: {len(result)} strings for {len(texts.flat)}")
    return result


def _characters(b: bytes) -> list[bytes]:
    """``tf.strings.unicode_split(x, 'UTF-8')``: a token per code point; each maximal
    invalid subsequence becomes U+FFFD, as Python's ``'replace'`` does (measured equal)."""
    return [c.encode() for c in b.decode("utf-8", "replace")]


def split(texts: Texts, standardized: list[bytes], mode: str | Callable[..., Any] | None,
          encoding: str) -> Rows:
    """Cut standardized texts into rows of tokens (see the module docstring for shapes)."""
    shape = texts.shape
    if mode is None:
        if len(shape) <= 1:  # one row: the strings themselves (Keras's dense path)
            return Rows(arrow.binary(standardized), np.array([0, len(standardized)], np.int64),
                        batched=False, scalar=not shape)
        n, k = shape
        return Rows(arrow.binary(standardized), np.arange(n + 1, dtype=np.int64) * k, batched=True)
    if len(shape) == 2 and shape[1] != 1:
        raise ValueError("When splitting strings the input must have rank 1 or a last axis "
                         f"of 1. Received: shape={shape}")
    batched = bool(shape)
    if mode == "whitespace":
        docs = arrow.binary(standardized).view(pa.large_string())
        lists = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(docs))
        offsets = arrow.to_numpy(lists.offsets).astype(np.int64)
        values = lists.values.view(pa.large_binary())
        # Arrow splits '' into [''], TF into []
        empty = arrow.to_numpy(pc.binary_length(values)) == 0
        if empty.any():
            lengths = np.diff(offsets)
            row_of = np.repeat(np.arange(len(lengths)), lengths)
            keep = ~empty
            values = values.filter(arrow.numbers(keep))
            offsets = native.offsets(np.bincount(row_of[keep], minlength=len(lengths)).tolist(),
                               len(lengths))
        return Rows(values, offsets - offsets[0], batched)
    if mode == "character":
        rows = [_characters(b) for b in standardized]
    else:
        decoded = np.array([t.decode(encoding, "surrogateescape") for t in standardized],
                           dtype=str)
        result = list(mode(decoded))  # type: ignore[operator]
        if len(result) != len(standardized):
            raise ValueError(f"the split callable must return one token list per string. "
                             f"Received: {len(result)} lists for {len(standardized)} strings")
        rows = [_strings(list(r), encoding) for r in result]
    flat = [t for r in rows for t in r]
    return Rows(arrow.binary(flat), native.offsets(map(len, rows), len(rows)), batched)


def ngrams(rows: Rows, widths: tuple[int, ...]) -> Rows:
    """``tf.strings.ngrams(rows, widths, separator=" ")``: per row, all n-grams of the
    first width left to right, then of the next width, and so on."""
    lengths = rows.lengths
    n_rows = len(lengths)
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)  # (V,): row of each token
    row_end = rows.offsets[1:][row_of]
    position = np.arange(len(row_of), dtype=np.int64)
    pieces, piece_rows = [], []
    for width in widths:
        starts = np.nonzero(position + width <= row_end)[0]  # grams inside one row
        parts = [rows.values.take(arrow.numbers(starts + k)) for k in range(width)]
        pieces.append(parts[0] if width == 1 else pc.binary_join_element_wise(
            *parts, arrow.binary([NGRAM_SEPARATOR])[0]))
        piece_rows.append(row_of[starts])
    flat_rows = np.concatenate(piece_rows) if piece_rows else np.zeros(0, np.int64)
    order = np.argsort(flat_rows, kind="stable")  # by row; widths and positions kept in order
    values = pa.concat_arrays(pieces).take(arrow.numbers(order)) if pieces else arrow.binary([])
    counts = np.bincount(flat_rows, minlength=n_rows)
    return Rows(values, native.offsets(counts.tolist(), n_rows), rows.batched, rows.scalar)
