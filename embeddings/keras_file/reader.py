"""Read the tutorial model from a ``.keras`` or ``.weights.h5`` file, and vocabularies.

Of a ``.keras`` archive only the members the model needs are read: ``config.json``,
``model.weights.h5`` and the ``TextVectorization``'s vocabulary asset, each after its
declared size is checked against its limit (:data:`CONFIG_LIMIT`,
:data:`VOCABULARY_LIMIT`, the available memory for the weights).
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.errors import InvalidInput, MissingFile
from embeddings.keras_file.architecture import RESAVE, RESAVE_SENTENCE, Architecture, parse_config
from embeddings.keras_file.hdf5 import read_weights
from embeddings.memory import check_fits

CONFIG_LIMIT = 16 * 2**20  # bytes of a .keras archive's config.json
VOCABULARY_LIMIT = 256 * 2**20  # bytes of a vocabulary (asset, sidecar or --vocabulary)
CONFIG_MEMBER, WEIGHTS_MEMBER = "config.json", "model.weights.h5"


@dataclass
class KerasModelFile:
    """What a Keras file holds of the tutorial model."""

    arrays: dict[str, np.ndarray]  # native names, Keras layout
    vocabulary: list[str] | None  # from a TextVectorization inside, if any
    sequence_length: int | None
    standardize: str | None  # "tutorial" for a custom function, else Keras's built-in name
    mask_zero: bool  # the Embedding's mask_zero (False for a .weights.h5: it holds no config)
    ngrams: int | None  # the TextVectorization's ngrams=(1, ..., N) as N; None without one


def _too_large(what: str, size: int, limit: int) -> InvalidInput:
    return InvalidInput(f"{what} is {size:,} bytes, more than the {limit:,} allowed. "
                        f"Received: an oversized or damaged file; {RESAVE}.")


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    """One member of an archive, after checking its declared size against ``limit`` and
    the available memory (the read never returns more than the declared size).

    Raises:
        InvalidInput: the member is too large, or cannot be read.
    """
    info = archive.getinfo(name)
    what = f"{where}: {name}"
    if info.file_size > limit:
        raise _too_large(what, info.file_size, limit)
    check_fits(info.file_size, what, RESAVE_SENTENCE)
    try:
        with archive.open(info) as handle:
            return handle.read(info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError) as err:  # corrupt, truncated, unknown method, encrypted
        raise InvalidInput(f"{what} cannot be read: {err}. Received: a damaged archive; "
                           f"{RESAVE}.") from err


def _read_archive(path: Path) -> tuple[Architecture, bytes, list[str] | None]:
    """The architecture, the weights file's bytes and the vectorizer's vocabulary of a
    ``.keras`` archive; no other member is read."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise InvalidInput(f"{path} is not a readable .keras archive: {err}. Received: "
                           f"path={str(path)!r}; {RESAVE}.") from err
    with archive:
        names = set(archive.namelist())
        if not {CONFIG_MEMBER, WEIGHTS_MEMBER} <= names:
            raise InvalidInput(f"{path} is a zip but not a .keras archive (no {CONFIG_MEMBER} "
                               f"and {WEIGHTS_MEMBER} inside). Received: path={str(path)!r}; "
                               "pass a file written by Keras's model.save().")
        model = parse_config(_read_member(archive, CONFIG_MEMBER, CONFIG_LIMIT, str(path)),
                              f"{path}: {CONFIG_MEMBER}")
        vocabulary = None
        if model.vectorizer is not None:
            key = f"assets/layers/{model.vectorizer}/vocabulary.txt"
            if key not in names:
                raise InvalidInput(f"{path}: the TextVectorization layer's vocabulary ({key}) "
                                   f"is missing. Received: path={str(path)!r}; {RESAVE}.")
            vocabulary = _lines(_read_member(archive, key, VOCABULARY_LIMIT, str(path)))
        weights_bytes = _read_member(archive, WEIGHTS_MEMBER, sys.maxsize, str(path))
    return model, weights_bytes, vocabulary


def _lines(data: bytes) -> list[str]:
    """Tokens one per line; '' may only be the first, so a final empty line is an end."""
    lines = data.split(b"\n")
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    return [t.decode("utf-8", "surrogateescape") for t in lines]


def read_keras(path: str | os.PathLike[str]) -> KerasModelFile:
    """Read the tutorial model from a ``.keras`` or ``.weights.h5`` file.

    Args:
        path (str | os.PathLike): the file.

    Returns:
        KerasModelFile: its weights and, from a ``.keras``, what its config says.

    Raises:
        MissingFile: no such file.
        InvalidInput: the file is not a Keras file of the tutorial model, or breaks one of
            the rules in this module's docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"No Keras file at {path}. Received: path={str(path)!r}; pass the "
                          "path of a .keras or .weights.h5 file.")
    if not zipfile.is_zipfile(path):
        return KerasModelFile(read_weights(path, None, str(path), 0), None, None, "tutorial",
                              False, None)
    model, weights_bytes, vocabulary = _read_archive(path)
    arrays = read_weights(io.BytesIO(weights_bytes), model.roles, f"{path}: {WEIGHTS_MEMBER}",
                           len(weights_bytes))
    return KerasModelFile(arrays, vocabulary, model.sequence_length, model.standardize,
                          model.mask_zero, model.ngrams)


def read_vocabulary(path: str | os.PathLike[str]) -> list[str]:
    """A vocabulary from ``vocabulary.json`` (a JSON list) or a text file, one token a line.

    Raises:
        MissingFile: no such file.
        InvalidInput: the file is larger than :data:`VOCABULARY_LIMIT` or not a list of
            tokens.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"No vocabulary file at {path}. Received: vocabulary={str(path)!r}")
    size = path.stat().st_size
    if size > VOCABULARY_LIMIT:
        raise _too_large(f"The vocabulary {path}", size, VOCABULARY_LIMIT)
    if path.suffix == ".json":
        try:
            tokens = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as err:
            raise InvalidInput(f"{path} is not readable JSON: {err}") from err
        if not isinstance(tokens, list):
            raise InvalidInput(f"{path} must hold a JSON list of tokens. "
                               f"Received: {type(tokens).__name__}")
        return [str(t) for t in tokens]
    return _lines(path.read_bytes())
