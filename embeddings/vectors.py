"""Pretrained word vectors: read a GloVe, fastText or word2vec text file into our vocabulary.

``--init-vectors FILE`` starts the embedding table from such a file: the rows of the
vocabulary's tokens that the file holds take its vectors, every other row keeps its
initialiser.  The format is the one ``vectors.vec`` of every run is written in
(:func:`embeddings.runs.projector.write_vec`), so a run's table can start another:

* an optional header line ``N D`` (two integers; ``N`` is not checked);
* then one line per token, ``token v1 ... vD``, fields separated by single spaces, as
  fastText, GloVe and word2vec write them (a token cannot hold a space; trailing
  spaces and ``\\r\\n`` line ends are allowed, blank lines skipped);
* UTF-8, undecodable bytes kept by ``surrogateescape`` (as our vocabulary keeps them), so
  a token with such bytes matches ours.

The file is streamed line by line (GloVe files run to gigabytes) and only the
vocabulary's rows are kept: every line's field count is checked, but values are parsed
only on the lines whose token is in the vocabulary (as float32, by NumPy: the shortest
``str(numpy.float32)`` strings of ``vectors.vec`` come back bit for bit).  The first line
of a token wins; later ones are ignored.  Row 0, the padding, is never replaced (its
token ``''`` cannot be written in the format); ``[UNK]`` is, when the file holds it.
No torch here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.errors import InvalidInput, MissingFile

FLAG = "--init-vectors"


@dataclass(frozen=True)
class PretrainedRows:
    """The rows of a vector file that our vocabulary has.

    Args:
        path (str): the file read.
        sha256 (str): the hex digest of its bytes.
        ids (np.ndarray): ``(n,)`` int64 vocabulary ids, in the file's order.
        vectors (np.ndarray): ``(n, D)`` float32 rows for ``ids``.
        words (int): the rows a file could fill: the vocabulary without the padding.
    """

    path: str
    sha256: str
    ids: np.ndarray
    vectors: np.ndarray
    words: int

    @property
    def matched(self) -> int:
        """How many vocabulary rows the file fills."""
        return len(self.ids)

    def report(self) -> dict[str, object]:
        """The JSON-ready record of a run's ``config.json``: file, sha256, matched, words."""
        return {"file": self.path, "sha256": self.sha256, "matched": self.matched,
                "words": self.words}

    def summary(self) -> str:
        """The one line a run logs, e.g. ``--init-vectors g.txt: 8,123 of 9,999 words matched``."""
        return f"{FLAG} {self.path}: {self.matched:,} of {self.words:,} words matched"


def _lines(path: Path, digest: hashlib._Hash | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line, its line end and trailing spaces
    removed, decoded as UTF-8 with ``surrogateescape``; feeds ``digest`` every byte."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, 1):
            if digest is not None:
                digest.update(raw)
            text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n").rstrip(" ")
            if number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark
            if text:
                yield number, text


def _is_header(text: str) -> bool:
    parts = text.split(" ")
    return len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts)


def _mismatch(where: str, count: int, dim: int, what: str = "has {} values") -> InvalidInput:
    return InvalidInput(
        f"{FLAG} {where} {what.format(count)} but --embedding-dim is {dim}; pass "
        f"--embedding-dim {count} or another file."
    )


def check_file(path: str | os.PathLike[str], dim: int) -> None:
    """Check, cheaply, that ``path`` can start a table of width ``dim``: it is a file, and
    its header (if any) or first vector line has ``dim`` values.  Run before any data is
    read, so that a typo or a wrong width costs no data load.

    Args:
        path (str | os.PathLike): the vector file.
        dim (int): D, the embedding width.

    Raises:
        MissingFile: no such file.
        InvalidInput: not a file, no vector line, or a first line of the wrong width.
    """
    path = Path(path)
    _check_path(path)
    for _ in _vector_lines(path, dim):
        return
    raise _no_vectors(path)


def _vector_lines(path: Path, dim: int,
                  digest: hashlib._Hash | None = None) -> Iterator[tuple[int, str]]:
    """The vector lines of ``path``, after its header if any, each checked to hold ``dim``
    values.

    Raises:
        InvalidInput: a header or a line with another width than ``dim`` (naming it).
    """
    first = True
    for number, text in _lines(path, digest):
        if first and _is_header(text):
            declared = int(text.split(" ")[1])
            if declared != dim:
                raise _mismatch(f"{path}:{number} (header)", declared, dim,
                                "declares {} dimensions")
            first = False
            continue
        first = False
        count = text.count(" ")
        if count != dim:
            raise _mismatch(f"{path}:{number}", count, dim)
        yield number, text


def _check_path(path: Path) -> None:
    if not path.exists():
        raise MissingFile(f"{FLAG} {path} does not exist. Received: {FLAG}={str(path)!r}; "
                          "pass a GloVe or fastText .vec text file.")
    if not path.is_file():
        raise InvalidInput(f"{FLAG} {path} is not a file. Received: {FLAG}={str(path)!r}; "
                           "pass a GloVe or fastText .vec text file.")


def _no_vectors(path: Path) -> InvalidInput:
    return InvalidInput(f"{FLAG} {path} holds no vector line ('token v1 ... vD'). "
                        f"Received: {FLAG}={str(path)!r}; pass a GloVe or fastText .vec file.")


def read_vectors(path: str | os.PathLike[str], vocabulary: Sequence[str],
                 dim: int) -> PretrainedRows:
    """Read the rows of ``vocabulary`` from the vector file ``path`` (see the module
    docstring for the format), streaming it once.

    Args:
        path (str | os.PathLike): the vector file.
        vocabulary (Sequence[str]): tokens in id order, ``''`` (padding) first.
        dim (int): D; every vector line must hold ``D`` values.

    Returns:
        PretrainedRows: the matched ids and their ``(n, D)`` float32 rows.

    Raises:
        MissingFile: no such file.
        InvalidInput: naming ``file:line``: a line with another number of values than
            ``dim`` (or a header declaring another), a value that is not a number or not
            finite; or a file without a vector line.
    """
    path = Path(path)
    _check_path(path)
    wanted = {token: i for i, token in enumerate(vocabulary) if i > 0}  # never the padding
    ids: list[int] = []
    rows: list[np.ndarray] = []
    digest = hashlib.sha256()
    seen_vector = False
    for number, text in _vector_lines(path, dim, digest):
        seen_vector = True
        token, _, values = text.partition(" ")
        row = wanted.pop(token, None)  # popped: the first line of a token wins
        if row is None:
            continue
        ids.append(row)
        rows.append(_parse(values, f"{path}:{number}"))
    if not seen_vector:
        raise _no_vectors(path)
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return PretrainedRows(path=str(path), sha256=digest.hexdigest(),
                          ids=np.asarray(ids, dtype=np.int64), vectors=vectors,
                          words=max(len(vocabulary) - 1, 0))


def _parse(values: str, where: str) -> np.ndarray:
    """``(D,)`` float32 from the space-separated ``values`` of line ``where``."""
    parts = values.split(" ")
    try:
        with np.errstate(over="ignore"):  # 1e40 overflows to inf: refused as not finite
            row = np.array(parts, dtype=np.float32)
    except ValueError:
        bad = next(p for p in parts if not _is_number(p))
        raise InvalidInput(f"{FLAG} {where}: {bad!r} is not a number. Received: a line "
                           "'token v1 ... vD' with a non-numeric value; fix or replace the "
                           "file.") from None
    if not np.isfinite(row).all():
        bad = parts[int(np.flatnonzero(~np.isfinite(row))[0])]
        raise InvalidInput(f"{FLAG} {where}: {bad!r} is not a finite number. Received: a "
                           "line with a NaN or infinite value; fix or replace the file.")
    return row


def _is_number(text: str) -> bool:
    try:
        with np.errstate(over="ignore"):
            np.float32(text)
    except ValueError:
        return False
    return True


def apply(table: np.ndarray, rows: PretrainedRows) -> np.ndarray:
    """Overwrite the rows ``rows.ids`` of ``table`` with ``rows.vectors``, in place.

    Args:
        table (np.ndarray): ``(V, D)`` float32 embedding table.
        rows (PretrainedRows): what :func:`read_vectors` returned.

    Returns:
        np.ndarray: ``table`` itself.

    Raises:
        ValueError: ``table`` has another width than the rows, or too few rows.
    """
    if (table.ndim != 2 or table.shape[1] != rows.vectors.shape[1]
            or (rows.matched and table.shape[0] <= int(rows.ids.max()))):
        raise ValueError(f"table must be (V, {rows.vectors.shape[1]}) with a row per matched "
                         f"id. Received: table.shape={table.shape}")
    table[rows.ids] = rows.vectors  # (n, D) into (V, D)
    return table
