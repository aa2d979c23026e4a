"""``TextVectorization``: Keras's layer rebuilt on raw bytes, with no TensorFlow.

TensorFlow's string ops work on bytes and never decode UTF-8, so every rule
here is a byte rule (``PARITY.md`` sections 1-5):

* lowercasing maps only ``A``-``Z``; other bytes, UTF-8 or not, are unchanged;
* ``"tutorial"`` standardization lowercases, replaces ``<br />`` with a space,
  then deletes the 32 ASCII punctuation bytes;
* ``"whitespace"`` splitting splits on runs of `` \\t\\n\\v\\f\\r`` only;
* ``adapt`` orders the vocabulary by count, then by token bytes, both
  descending, after ``''`` (padding, id 0) and ``'[UNK]'`` (id 1);
* ``int`` output keeps the first ``output_sequence_length`` tokens and pads
  with zeros on the right.

Text can be given as ``str`` or ``bytes``; a ``str`` is encoded as UTF-8 with
``surrogateescape``, so bytes decoded that way come back unchanged.  Outputs are NumPy
int64 arrays: the engine imports no torch, Keras or TensorFlow (callers convert at
their boundary, e.g. ``torch.from_numpy``).

>>> vec = TextVectorization(max_tokens=10, output_sequence_length=5)
>>> vec.adapt(["a b c d e f g"])
>>> vec(["a b", "zz a"]).tolist()
[[8, 7, 0, 0, 0], [1, 8, 0, 0, 0]]
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embeddings.text import native

TextLike = str | bytes
Standardizer = Callable[[bytes], bytes | str]
Splitter = Callable[[bytes], Sequence[bytes | str]]

T = TypeVar("T")

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
STANDARDIZE_MODES = ("tutorial", "lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT_MODES = ("whitespace", "character")

_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_PUNCTUATION = string.punctuation.encode()  # the 32 bytes of the tutorial's regex class
_THREADS = max(1, min(4, os.cpu_count() or 1))
_MIN_CHUNK = 2048  # texts per thread below which one thread is faster


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
_STANDARDIZERS: dict[str, Callable[[bytes], bytes]] = {
    "tutorial": _tutorial,
    "lower_and_strip_punctuation": _lower_and_strip,
    "lower": _lower,
    "strip_punctuation": _strip,
}


def _to_bytes(text: TextLike) -> bytes:
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape")
    raise TypeError(f"texts must be str or bytes. Received: a {type(text).__name__}: {text!r:.80}")


def _as_strings(items: list[bytes]) -> pa.Array:
    """Bytes as an Arrow string array without UTF-8 validation (TF never decodes)."""
    return pa.array(items, pa.large_binary()).view(pa.large_string())


def _characters(b: bytes) -> list[bytes]:
    """``tf.strings.unicode_split(x, 'UTF-8')``: one token per code point, U+FFFD for bad bytes."""
    return [c.encode() for c in b.decode("utf-8", "replace")]


class TextVectorization:
    """Turn texts into padded integer sequences, exactly as Keras's layer does on TensorFlow.

    Args:
        max_tokens (int | None): vocabulary size including ``''`` and ``'[UNK]'``;
            ``None`` keeps every token. Default: ``None``.
        standardize (str | Callable | None): ``"tutorial"`` (the tutorial's custom
            standardization), ``"lower_and_strip_punctuation"``, ``"lower"``,
            ``"strip_punctuation"``, ``None``, or a callable from bytes to bytes or str.
            Default: ``"lower_and_strip_punctuation"``.
        split (str | Callable | None): ``"whitespace"``, ``"character"``, ``None``
            (the whole text is one token) or a callable from bytes to a token list.
            Default: ``"whitespace"``.
        output_mode (str): only ``"int"``. Default: ``"int"``.
        output_sequence_length (int | None): pad or truncate every sequence to this
            length; ``None`` pads to the longest text of each call. Default: ``None``.
        vocabulary (Sequence[str | bytes] | str | os.PathLike | None): a token list or
            a file with one token per line; see :meth:`set_vocabulary`. Default: ``None``.

    Raises:
        ValueError: an unknown mode or a bad size (the message names it).
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | Standardizer | None = "lower_and_strip_punctuation",
        split: str | Splitter | None = "whitespace",
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        vocabulary: Sequence[TextLike] | str | os.PathLike[str] | None = None,
    ) -> None:
        if max_tokens is not None and max_tokens < 3:
            raise ValueError(
                "max_tokens must be None or at least 3 ('' and '[UNK]' count). "
                f"Received: max_tokens={max_tokens}"
            )
        if isinstance(standardize, str) and standardize not in STANDARDIZE_MODES:
            raise ValueError(
                f"standardize must be one of {STANDARDIZE_MODES}, None or a callable. "
                f"Received: standardize={standardize!r}"
            )
        if isinstance(split, str) and split not in SPLIT_MODES:
            raise ValueError(
                f"split must be one of {SPLIT_MODES}, None or a callable. Received: split={split!r}"
            )
        if output_mode != "int":
            raise ValueError(
                f"Only output_mode='int' is supported. Received: output_mode={output_mode!r}"
            )
        if output_sequence_length is not None and output_sequence_length < 1:
            raise ValueError(
                "output_sequence_length must be None or at least 1. "
                f"Received: output_sequence_length={output_sequence_length}"
            )
        self.max_tokens = max_tokens
        self.standardize = standardize
        self.split = split
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self._table: native.VocabularyTable | None = None
        self._set_tokens([PAD_TOKEN.encode(), OOV_TOKEN.encode()])
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # -- text to tokens ------------------------------------------------------
    def _token_lists(self, texts: list[TextLike], limit: int | None = None) -> pa.Array:
        """Tokens of each text as an Arrow list array of (unvalidated) strings.

        With ``limit``, each list holds at least the first ``limit`` tokens (the
        rest may be left unsplit).  Built-in standardization and whitespace
        splitting run in Arrow's C++ kernels; whitespace there is exactly
        Python's ``bytes.split()`` six bytes.
        """
        if self.standardize is None:
            docs = _as_strings([_to_bytes(t) for t in texts])
        elif isinstance(self.standardize, str) and native.available():
            data, offsets = native.standardize([_to_bytes(t) for t in texts], self.standardize)
            docs = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets),
                                                    pa.py_buffer(data))
        elif isinstance(self.standardize, str):
            standardize = _STANDARDIZERS[self.standardize]
            docs = _as_strings([standardize(_to_bytes(t)) for t in texts])
        else:
            docs = _as_strings([_to_bytes(self.standardize(_to_bytes(t))) for t in texts])
        if self.split == "whitespace":
            docs = pc.ascii_trim_whitespace(docs)  # else leading/trailing runs give '' tokens
            return pc.ascii_split_whitespace(docs, max_splits=limit)
        standardized = docs.view(pa.large_binary()).to_pylist()
        if self.split is None:
            lists = [[b] for b in standardized]
        elif self.split == "character":
            lists = [_characters(b) for b in standardized]
        else:
            lists = [[_to_bytes(t) for t in self.split(b)] for b in standardized]  # type: ignore[operator]
        return pa.array(lists, pa.large_list(pa.large_binary())).view(
            pa.large_list(pa.large_string())
        )

    @staticmethod
    def _per_chunk(fn: Callable[[list[TextLike]], T], texts: list[TextLike]) -> list[T]:
        """Run ``fn`` on consecutive chunks of ``texts``, on threads (Arrow releases the GIL)."""
        n = max(1, min(_THREADS, len(texts) // _MIN_CHUNK))
        bounds = [len(texts) * i // n for i in range(n + 1)]
        chunks = [texts[bounds[i]:bounds[i + 1]] for i in range(n)]
        if n == 1:
            return [fn(chunks[0])]
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(fn, chunks))

    # -- vocabulary ----------------------------------------------------------
    def adapt(self, texts: Iterable[TextLike]) -> None:
        """Learn the vocabulary from ``texts``.

        Counts every token, drops ``''`` and ``'[UNK]'``, and keeps the
        ``max_tokens - 2`` most frequent, ties broken by descending token bytes.
        """
        texts = list(texts)
        if self.split == "whitespace" and not callable(self.standardize) and \
                native.available():
            learned = self._adapt_compiled(texts)
        else:
            learned = self._adapt_arrow(texts)
        self._set_tokens([PAD_TOKEN.encode(), OOV_TOKEN.encode()] + learned)

    def _adapt_compiled(self, texts: list[TextLike]) -> list[bytes]:
        """Standardize and count in the compiled kernels (a chunk per thread), merge the
        chunks' counts, and rank only the tokens that can enter the vocabulary."""
        mode = self.standardize if isinstance(self.standardize, str) else "none"

        def count(chunk: list[TextLike]) -> tuple[list[bytes], list[int]]:
            data, offsets = native.standardize([_to_bytes(t) for t in chunk], mode)
            starts, lengths, counts = native.count_tokens(data, offsets)
            raw = data.tobytes()
            return ([raw[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist(),
                                                   strict=True)], counts.tolist())

        parts = self._per_chunk(count, texts)
        totals = dict(zip(*parts[0], strict=True))
        for tokens, counts in parts[1:]:
            for token, c in zip(tokens, counts, strict=True):
                totals[token] = totals.get(token, 0) + c
        totals.pop(OOV_TOKEN.encode(), None)
        wanted = len(totals) if self.max_tokens is None else self.max_tokens - 2
        values = np.fromiter(totals.values(), dtype=np.int64, count=len(totals))
        floor = 0
        if wanted < len(values):  # only tokens counted as often as the wanted-th can enter
            floor = int(np.partition(values, len(values) - wanted)[len(values) - wanted])
        ranked = sorted(((c, t) for t, c in totals.items() if c >= floor), reverse=True)
        return [t for _, t in ranked[:wanted]]  # count descending, then bytes descending

    def _encode_compiled(self, batch: list[TextLike], length: int) -> np.ndarray:
        """Standardize, split and look up in one compiled pass per chunk (a chunk per thread),
        reading only as much of each text as its first ``length`` tokens need."""
        if self._table is None:
            self._table = native.VocabularyTable(self._tokens)
        table = self._table
        mode = self.standardize if isinstance(self.standardize, str) else "none"
        parts = self._per_chunk(
            lambda chunk: native.encode([_to_bytes(t) for t in chunk], mode, table, length),
            batch)
        return np.concatenate(parts) if parts else np.zeros((0, length), dtype=np.int64)

    def _adapt_arrow(self, texts: list[TextLike]) -> list[bytes]:
        """Count with Arrow's kernels, on threads (any split and standardization)."""
        def count(chunk: list[TextLike]) -> pa.StructArray:
            return pc.value_counts(pc.list_flatten(self._token_lists(chunk)))

        parts = self._per_chunk(count, texts)
        table = pa.table({
            "token": pa.chunked_array([p.field("values").view(pa.large_binary()) for p in parts]),
            "count": pa.chunked_array([p.field("counts") for p in parts]),
        })
        if len(parts) > 1:  # the same token counted in several chunks
            summed = table.group_by("token").aggregate([("count", "sum")])
            table = pa.table({"token": summed["token"], "count": summed["count_sum"]})
        specials = pa.array([PAD_TOKEN.encode(), OOV_TOKEN.encode()], pa.large_binary())
        table = table.filter(pc.invert(pc.is_in(table["token"], value_set=specials)))
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("token", "descending")])
        if self.max_tokens is not None:
            order = order[: self.max_tokens - 2]
        return list(table["token"].take(order).to_pylist())

    def set_vocabulary(self, vocabulary: Sequence[TextLike] | str | os.PathLike[str]) -> None:
        """Use a given vocabulary instead of learning one.

        Args:
            vocabulary (Sequence[str | bytes] | str | os.PathLike): tokens in id order,
                or a UTF-8 file with one per line.  If it does not start with ``''``
                and ``'[UNK]'`` they are put in front, as Keras does.

        Raises:
            ValueError: duplicate tokens, ``''`` or ``'[UNK]'`` out of place, or more
                than ``max_tokens`` tokens.
        """
        if isinstance(vocabulary, (str, os.PathLike)):
            lines = Path(vocabulary).read_bytes().split(b"\n")
            tokens = lines[:-1] if lines and lines[-1] == b"" else lines
        else:
            tokens = [_to_bytes(t) for t in vocabulary]
        specials = [PAD_TOKEN.encode(), OOV_TOKEN.encode()]
        if tokens[:2] != specials:
            if any(t in specials for t in tokens):
                raise ValueError(
                    "vocabulary may hold '' and '[UNK]' only as its first two tokens, in that "
                    "order, or not at all (they are then added). Received: vocabulary starting "
                    f"{[t.decode('utf-8', 'replace') for t in tokens[:5]]}"
                )
            tokens = specials + tokens
        if len(set(tokens)) != len(tokens):
            seen: set[bytes] = set()
            dup = next(t for t in tokens if t in seen or seen.add(t))  # type: ignore[func-returns-value]
            raise ValueError(f"vocabulary has a repeated token. Received: token={dup!r}")
        if self.max_tokens is not None and len(tokens) > self.max_tokens:
            raise ValueError(
                f"vocabulary has {len(tokens)} tokens, more than max_tokens={self.max_tokens}. "
                "Raise max_tokens or pass a shorter vocabulary."
            )
        self._set_tokens(tokens)

    def _set_tokens(self, tokens: list[bytes]) -> None:
        self._tokens = tokens
        self._vocab_array = pa.array(tokens, pa.large_binary()).view(pa.large_string())
        self._table = None  # built on the first compiled call

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The tokens in id order, as str (bytes that are not UTF-8 use ``surrogateescape``)."""
        tokens = self._tokens if include_special_tokens else self._tokens[2:]
        return [t.decode("utf-8", "surrogateescape") for t in tokens]

    def vocabulary_size(self) -> int:
        """Number of ids, ``''`` and ``'[UNK]'`` included."""
        return len(self._tokens)

    # -- tokens to ids -------------------------------------------------------
    def __call__(self, texts: TextLike | Iterable[TextLike]) -> np.ndarray:
        """Vectorize ``texts``.

        Args:
            texts (str | bytes | Iterable[str | bytes]): one text or many.

        Returns:
            np.ndarray: int64 ids of shape ``(N, output_sequence_length)`` (``(1, L)``
            for a single text); unknown tokens are 1, padding is 0 on the right.
        """
        if len(self._tokens) <= 2:
            raise ValueError(
                "The vocabulary is empty: call adapt(texts) or set_vocabulary(tokens) first."
            )
        batch = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        length = self.output_sequence_length
        if length is not None and self.split == "whitespace" and \
                not callable(self.standardize) and native.available():
            return self._encode_compiled(batch, length)

        def encode(chunk: list[TextLike]) -> tuple[np.ndarray, np.ndarray]:
            lists = self._token_lists(chunk, length)
            if length is not None:
                lists = pc.list_slice(lists, 0, length)
            # '' (an empty text's only token) finds id 0, the padding id, as it should.
            found = pc.index_in(pc.list_flatten(lists), value_set=self._vocab_array)
            return (pc.list_value_length(lists).to_numpy(zero_copy_only=False),
                    found.fill_null(1).to_numpy(zero_copy_only=False))  # unknown -> 1

        parts = self._per_chunk(encode, batch)
        lengths = np.concatenate([p[0] for p in parts])
        width = int(lengths.max(initial=0)) if length is None else length
        ids = np.zeros((len(lengths), width), dtype=np.int64)
        filled = np.arange(width) < lengths[:, None]  # (N, L): positions holding a token
        ids[filled] = np.concatenate([p[1] for p in parts])
        return ids
