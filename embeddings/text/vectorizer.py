"""``TextVectorization``: Keras 3's layer rebuilt on raw bytes, with no TensorFlow.

Every constructor argument and method of ``keras.layers.TextVectorization`` is here with
TensorFlow's semantics (``PARITY.md`` sections 1-5 and 11): standardize, split, n-grams,
``adapt`` (counts, ties, ``max_tokens``, document frequencies) and the ``int``,
``multi_hot``, ``count``, ``tf_idf`` and ``one_hot`` outputs.  Outputs are NumPy arrays
of TensorFlow's dtypes: int64 for ids, multi-hot and counts, float32 for TF-IDF; callers
convert at their boundary (``torch.from_numpy``, or :mod:`embeddings.layers` for a Keras
layer on any backend).

Without TensorFlow: ``ragged=True`` returns a list of int64 arrays, one per text;
``sparse=True`` is refused (there is no sparse tensor to return); ``encoding`` names how
bytes are decoded for ``get_vocabulary`` and for callables (``str`` inputs are encoded as
UTF-8, as TensorFlow encodes them).  ``standardize="tutorial"`` is the tutorial's custom
standardization (lowercase, ``<br />`` to a space, strip punctuation).

>>> vec = TextVectorization(max_tokens=10, output_sequence_length=5)
>>> vec.adapt(["a b c d e f g"])
>>> vec(["a b", "zz a"]).tolist()
[[8, 7, 0, 0, 0], [1, 8, 0, 0, 0]]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embeddings import arrow
from embeddings.text import arguments, chunks, native, outputs, tokens
from embeddings.text import vocabulary as vocab_lib
from embeddings.text.arguments import OUTPUT_MODES
from embeddings.text.tokens import Rows, TextLike, Texts, adapt_batches, as_texts
from embeddings.text.vocabulary import OOV_TOKEN, PAD_TOKEN, Counts

ASSET_VOCABULARY = "vocabulary.txt"
__all__ = ["ASSET_VOCABULARY", "OOV_TOKEN", "OUTPUT_MODES", "PAD_TOKEN", "TextVectorization"]


class TextVectorization:
    """Turn texts into token ids or token-count vectors, exactly as Keras does on TensorFlow.

    Args:
        max_tokens (int | None): vocabulary size including the special ids (``''`` and
            ``'[UNK]'`` in ``int`` mode, ``'[UNK]'`` otherwise); ``None`` keeps every
            token. Default: ``None``.
        standardize (str | Callable | None): ``"lower_and_strip_punctuation"``,
            ``"lower"``, ``"strip_punctuation"``, ``"tutorial"``, ``None``, or a callable
            from a NumPy array of ``str`` to strings of the same shape.
            Default: ``"lower_and_strip_punctuation"``.
        split (str | Callable | None): ``"whitespace"``, ``"character"``, ``None`` (each
            string is a token), or a callable from a 1-D NumPy array of ``str`` to one
            token list per string. Default: ``"whitespace"``.
        ngrams (int | tuple[int, ...] | None): ``n`` makes 1- to n-grams; a tuple makes
            those widths. Default: ``None``.
        output_mode (str): ``"int"``, ``"multi_hot"``, ``"count"``, ``"tf_idf"`` or
            ``"one_hot"`` (``split=None`` only). Default: ``"int"``.
        output_sequence_length (int | None): ``int`` mode: pad or truncate to this
            length; ``None`` pads to the longest row. Default: ``None``.
        pad_to_max_tokens (bool): other modes: make the last axis ``max_tokens`` long.
            Default: ``False``.
        vocabulary (Sequence | str | os.PathLike | None): tokens, or a file with one per
            line; see :meth:`set_vocabulary`. Default: ``None``.
        idf_weights (Sequence[float] | np.ndarray | None): ``tf_idf`` weights for
            ``vocabulary``. Default: ``None``.
        sparse (bool): refused: needs TensorFlow's ``SparseTensor``. Default: ``False``.
        ragged (bool): ``int`` mode: return one int64 array per text. Default: ``False``.
        encoding (str): how bytes are decoded for ``get_vocabulary`` and callables.
            Default: ``"utf-8"``.

    Raises:
        ValueError: a bad argument or combination (the message names it).
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | Callable[..., Any] | None = "lower_and_strip_punctuation",
        split: str | Callable[..., Any] | None = "whitespace",
        ngrams: int | tuple[int, ...] | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Sequence[TextLike] | np.ndarray | str | os.PathLike[str] | None = None,
        idf_weights: Sequence[float] | np.ndarray | None = None,
        sparse: bool = False,
        ragged: bool = False,
        encoding: str = "utf-8",
        vocabulary_size: int | None = None,
    ) -> None:
        output_mode = arguments.ALIASES.get(output_mode, output_mode)
        arguments.check(max_tokens, standardize, split, ngrams, output_mode,
                        output_sequence_length, pad_to_max_tokens, idf_weights, sparse, ragged)
        self.max_tokens = max_tokens
        self.standardize = standardize
        self.split = split
        self.ngrams = ngrams
        self._widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.pad_to_max_tokens = pad_to_max_tokens
        self.sparse = sparse
        self.ragged = ragged
        self.encoding = tokens.check_encoding(encoding)
        # int mode reserves id 0 for '' (padding) and 1 for '[UNK]'; the others only id 0.
        self._specials = [PAD_TOKEN.encode(), OOV_TOKEN.encode()] if output_mode == "int" \
            else [OOV_TOKEN.encode()]
        self._frozen_size = vocabulary_size
        self._input_vocabulary = None if isinstance(vocabulary, (str, os.PathLike)) else \
            vocabulary
        self._input_idf_weights = idf_weights
        self._has_input_vocabulary = vocabulary is not None
        self._counts: Counts | None = None
        self._learned: list[bytes] = []
        self._has_vocabulary = False  # TensorFlow's lookup table starts uninitialized
        self.idf_weights: np.ndarray | None = None
        self._index: pa.Array = arrow.binary([])
        self._table: native.VocabularyTable | None = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.reset_state()

    # -- configuration -------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras's configuration keys (callables as given; ``vocabulary`` only as passed
        to the constructor as a list, never a file's or a learned one)."""
        def listify(value: Any) -> Any:
            return value.tolist() if isinstance(value, np.ndarray) else \
                list(value) if isinstance(value, tuple) else value

        return {
            "max_tokens": self.max_tokens,
            "standardize": self.standardize,
            "split": self.split,
            "ngrams": self.ngrams,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "sparse": self.sparse,
            "ragged": self.ragged,
            "vocabulary": listify(self._input_vocabulary),
            "idf_weights": listify(self._input_idf_weights),
            "encoding": self.encoding,
            "vocabulary_size": self.vocabulary_size(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextVectorization:
        """A vectorizer from :meth:`get_config`'s dictionary (a list ``ngrams`` is a tuple)."""
        config = dict(config)
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    # -- text to rows of tokens -----------------------------------------------
    def _rows(self, texts: Texts) -> Rows:
        standardized = tokens.standardize(texts, self.standardize, self.encoding)
        rows = tokens.split(texts, standardized, self.split, self.encoding)
        return tokens.ngrams(rows, self._widths) if self._widths else rows

    def _compiled(self, texts: Texts) -> str | None:
        """The compiled kernels' standardization mode, when they can do this work: built-in
        standardization, whitespace split, texts of shape ``()``, ``(N,)`` or ``(N, 1)``."""
        if self.split == "whitespace" and not callable(self.standardize) and \
                (len(texts.shape) < 2 or texts.shape[1] == 1) and native.available():
            return self.standardize or "none"
        return None

    # -- vocabulary ----------------------------------------------------------
    def reset_state(self) -> None:
        """Forget counts gathered by :meth:`update_state` (the vocabulary stays)."""
        self._counts = Counts(documents=self.output_mode == "tf_idf")

    def update_state(self, data: Any) -> None:
        """Count the tokens of one batch, as Keras's ``update_state`` does: a 1-D batch
        is one document when ``split=None``."""
        if self._has_input_vocabulary:
            raise ValueError("Cannot adapt after setting a vocabulary in the constructor; "
                             "make a new TextVectorization without `vocabulary` to adapt.")
        texts = as_texts(data)
        counts = self._counts
        assert counts is not None
        mode = self._compiled(texts)
        if mode is not None:
            widths, flat, separator = self._widths or (1,), texts.flat, tokens.NGRAM_SEPARATOR
            disjoint = max(widths) > 1
            if disjoint:  # n-grams: threads count disjoint hash partitions of all the texts
                packed = native.pack(flat)
                parts = len(chunks.bounds(len(flat), chunks.MIN_COMPILED_CHUNK)) - 1
                counted = chunks.threads(lambda part: native.count_ngrams(
                    packed, mode, widths, separator, part, parts), parts)
            else:  # few distinct tokens: threads count chunks of texts, merged by ranked()
                counted = chunks.per_chunk(lambda c: native.count_ngrams(
                    native.pack(c), mode, widths, separator), flat, chunks.MIN_COMPILED_CHUNK)
            counts.add_counted(counted, len(flat), disjoint)
            return
        if len(texts.shape) >= 1 and self.split is not None:  # split rows on threads
            for rows in chunks.per_chunk(
                    lambda c: self._rows(Texts(c, (len(c), *texts.shape[1:]))), texts.flat):
                counts.add_rows(rows)
            return
        counts.add_rows(self._rows(texts))

    def finalize_state(self) -> None:
        """Turn the counts into the vocabulary (and IDF weights in ``tf_idf`` mode)."""
        assert self._counts is not None
        if self._has_input_vocabulary or self._counts.empty():
            return
        start = len(self._specials)
        limit = None if self.max_tokens is None else self.max_tokens - start
        learned, documents = self._counts.ranked(limit)
        if not learned and (limit is None or limit > 0):
            raise ValueError("adapt found no token besides '' and '[UNK]' (TensorFlow fails "
                             "here too): adapt on texts that hold words.")
        self._set_learned(learned)
        if documents is not None:
            weights = vocab_lib.inverse_document_frequency(documents,
                                                           self._counts.num_documents)
            back = self.max_tokens - start - len(weights) if self.pad_to_max_tokens and \
                self.max_tokens is not None else 0
            self.idf_weights = np.concatenate([
                np.full(start, vocab_lib.oov_weight(weights), np.float32), weights,
                np.zeros(max(0, back), np.float32)])
        self.reset_state()

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the vocabulary (and document frequencies) from ``data``.

        Args:
            data: a list, tuple or NumPy array of strings (or of 1-string rows), a
                ``datasets`` column or other sequence (read like a list), or an iterable
                of batches such as a generator.
            batch_size (int | None): read a list or array this many strings at a time
                (the result does not change). Default: ``None`` (all at once).
            steps (int | None): read at most this many batches. Default: ``None``.

        Raises:
            ValueError: a vocabulary was given to the constructor, or ``data`` is a
                ``datasets.Dataset`` (pass one of its columns).
        """
        for name, value in (("batch_size", batch_size), ("steps", steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be None or a positive integer. "
                                 f"Received: {name}={value!r}")
        self.reset_state()
        for batch in adapt_batches(data, batch_size, steps):
            self.update_state(batch)
        self.finalize_state()

    def set_vocabulary(self, vocabulary: Sequence[TextLike] | np.ndarray | str |
                       os.PathLike[str], idf_weights: Sequence[float] | np.ndarray | None =
                       None) -> None:
        """Use a given vocabulary (and IDF weights) instead of learning one.

        Args:
            vocabulary: tokens in id order (the special tokens first, or not at all: they
                are then put in front), or a file path: one token per line, every line a
                token after the special ids, as TensorFlow reads it.
            idf_weights: ``tf_idf`` mode only (and then required): one weight per entry of
                ``vocabulary``; the special ids get their average unless given.

        Raises:
            ValueError: see :func:`embeddings.text.vocabulary.check_tokens`, or the IDF
                weights do not fit the mode or the vocabulary.
        """
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError("In tf_idf mode set_vocabulary needs idf_weights too. "
                             "Received: idf_weights=None")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError("idf_weights may only be set in output_mode='tf_idf'. "
                             f"Received: output_mode={self.output_mode!r}")
        start = len(self._specials)
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ValueError("tf_idf mode cannot read its vocabulary from a file (Keras "
                                 "refuses it too); pass a list and idf_weights.")
            learned = vocab_lib.read_vocabulary_file(vocabulary, self.max_tokens, start)
            self._set_learned(learned)
            return
        items = vocabulary.tolist() if isinstance(vocabulary, np.ndarray) else list(vocabulary)
        learned, found = vocab_lib.check_tokens(items, self._specials, self.max_tokens)
        self._set_learned(learned)
        if idf_weights is not None:
            pad_to = self.max_tokens if self.pad_to_max_tokens else None
            self.idf_weights = vocab_lib.given_idf(idf_weights, len(items), found, start, pad_to)

    def _set_learned(self, learned: list[bytes]) -> None:
        size = len(self._specials) + len(learned)
        if self.output_mode != "int" and not self.pad_to_max_tokens and \
                self._frozen_size is not None and self._frozen_size != size:
            raise RuntimeError(
                f"With output_mode={self.output_mode!r} and pad_to_max_tokens=False the "
                f"vocabulary size is fixed once set: it was {self._frozen_size}, the new one "
                f"is {size}. Make a new layer, or use pad_to_max_tokens=True.")
        self._frozen_size = size
        self._has_vocabulary = True
        self._learned = learned
        self._index = arrow.binary(learned)
        self._table = None  # built on the first compiled call

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The tokens in id order, decoded with ``encoding`` (``surrogateescape`` for bytes
        it cannot decode, so ``str.encode(encoding, "surrogateescape")`` gives them back)."""
        found = (self._specials if include_special_tokens else []) + self._learned
        return [t.decode(self.encoding, "surrogateescape") for t in found]

    def vocabulary_size(self) -> int:
        """The number of ids, the special ones included."""
        return len(self._specials) + len(self._learned)

    # -- saving ----------------------------------------------------------------
    def save_assets(self, dir_path: str | os.PathLike[str]) -> None:
        """Write the learned vocabulary as ``vocabulary.txt`` (a token per line, raw bytes)
        unless it was given to the constructor (then the configuration holds it)."""
        from embeddings.files import atomic_write_bytes

        if self._input_vocabulary is not None:
            return
        atomic_write_bytes(Path(dir_path) / ASSET_VOCABULARY,
                           b"".join(t + b"\n" for t in self._learned))

    def load_assets(self, dir_path: str | os.PathLike[str]) -> None:
        """Read what :meth:`save_assets` wrote (IDF weights come separately)."""
        if self._input_vocabulary is not None:
            return
        path = Path(dir_path) / ASSET_VOCABULARY
        learned = [] if path.stat().st_size == 0 else \
            vocab_lib.read_vocabulary_file(path, self.max_tokens, len(self._specials))
        self._set_learned(learned)

    # -- tokens to outputs -----------------------------------------------------
    def __call__(self, inputs: Any) -> np.ndarray | list[np.ndarray]:
        """Vectorize ``inputs``.

        Args:
            inputs: a string, a list or array of strings (or of 1-string rows).

        Returns:
            ``int`` mode: int64 ids, ``(N, T)`` (``(T,)`` for one string); ``T`` is
            ``output_sequence_length`` or the longest row, padding 0 on the right,
            unknown tokens 1.  Other modes: ``(N, depth)``, ``depth`` the vocabulary
            size or ``max_tokens`` with ``pad_to_max_tokens``; int64 (as TensorFlow
            returns them) except float32 for ``tf_idf``.

        Raises:
            RuntimeError: no vocabulary yet (TensorFlow's table is uninitialized then).
        """
        if not self._has_vocabulary:
            raise RuntimeError("The vocabulary is not set: call adapt(texts) on texts that "
                               "hold words, or pass vocabulary=.")
        texts = as_texts(inputs)
        length, int_mode = self.output_sequence_length, self.output_mode == "int"
        start = len(self._specials)
        depth = self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()
        assert depth is not None
        if self.output_mode == "tf_idf" and self.idf_weights is None:
            raise RuntimeError("tf_idf needs IDF weights: call adapt(texts) or pass "
                               "vocabulary= with idf_weights=.")
        mode = self._compiled(texts)
        if mode is not None:  # whitespace split, built-in standardization: compiled
            table, widths = self._table_of(), self._widths or (1,)
            if int_mode and not self.ragged and length is not None and self._widths is None:
                ids = outputs.compiled_sequences(texts.flat, mode, table, length)
                return ids if texts.shape else ids[0]
            if not int_mode:
                out = outputs.compiled_vectors(texts.flat, mode, table, widths, start - 1,
                                               self.output_mode, depth, self.idf_weights)
                return out if texts.shape else out[0]
            ids, offsets = outputs.compiled_ids(texts.flat, mode, table, widths, start - 1,
                                                length)
            batched, scalar = bool(texts.shape), False
        else:
            if self.split is not None and len(texts.shape) >= 1:  # split on threads
                parts = chunks.per_chunk(lambda c: self._rows(Texts(c, (len(c), 1))),
                                         texts.flat)
                lengths = np.concatenate([p.lengths for p in parts])
                rows = Rows(pa.concat_arrays([p.values for p in parts]),
                            np.concatenate([[0], np.cumsum(lengths)]), batched=True)
            else:
                rows = self._rows(texts)
            ids = outputs.ids_of(rows, self._index, start, int_mode)
            offsets, batched, scalar = rows.offsets, rows.batched, rows.scalar
        if int_mode:
            return outputs.sequences(ids, offsets, batched, scalar, length, self.ragged,
                                     self.split is not None)
        return outputs.vectors(ids, offsets, batched, self.output_mode, depth,
                               self.idf_weights)

    def _table_of(self) -> native.VocabularyTable:
        """The compiled lookup table: list positions are ids (the special ids' entries are
        '' and never match), built on first use."""
        if self._table is None:
            self._table = native.VocabularyTable([b""] * len(self._specials) + self._learned)
        return self._table

