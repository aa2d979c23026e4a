"""Reviews to score, read from a file or standard input, and shown on one line.

:func:`read_reviews` reads one review per line, the ``text`` field of JSON Lines, or the
``text`` column of a CSV file (by suffix, or as ``format`` says), skipping empty and
whitespace-only lines and rows.  Files and standard input are decoded as UTF-8 with
``surrogateescape``, as the training data is: bytes that are not UTF-8 reach the
vectorizer unchanged, as TensorFlow's byte rules see them.  :func:`shown` prints a review
on one line.  Used by :mod:`embeddings.predict`; no torch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

from embeddings.errors import InvalidInput, MissingFile

# --format: how --input (or standard input) holds its reviews; "auto" follows the suffix.
FORMATS = ("auto", "lines", "jsonl", "csv")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
STDIN = "-"
TEXT_COLUMN = "text"
SHOWN_CHARS = 80


class Reviews(NamedTuple):
    """The reviews of one input, and how many empty lines or rows were skipped."""

    texts: list[str]
    skipped: int


def input_format(source: str | os.PathLike[str], format: str = "auto") -> str:
    """The format :func:`read_reviews` reads ``source`` in: ``format`` unless it is
    ``"auto"``, then ``"jsonl"`` for ``.jsonl``/``.ndjson``, ``"csv"`` for ``.csv``
    (any case) and ``"lines"`` for anything else, standard input included.

    Args:
        source (str | os.PathLike): a file, or ``"-"`` for standard input.
        format (str): one of :data:`FORMATS`. Default: ``"auto"``.

    Returns:
        str: ``"lines"``, ``"jsonl"`` or ``"csv"``.

    Raises:
        InvalidInput: an unknown ``format``.
    """
    if format not in FORMATS:
        raise InvalidInput(f"format must be one of {FORMATS}. Received: format={format!r}")
    if format != "auto":
        return format
    if os.fspath(source) == STDIN:
        return "lines"
    return SUFFIXES.get(Path(source).suffix.lower(), "lines")


def read_reviews(source: str | os.PathLike[str], format: str = "auto") -> Reviews:
    """The reviews in a file or on standard input, in order, without the empty ones.

    ``"lines"``: one review per line (``\\n`` or ``\\r\\n``).  ``"jsonl"``: one JSON
    object per line with a ``"text"`` string (other fields are ignored).  ``"csv"``: a
    header row with a ``text`` column, read by :mod:`csv` (quoted fields may span
    lines).  Empty and whitespace-only lines, rows and ``text`` values are skipped and
    counted.  The bytes are decoded as UTF-8 with ``surrogateescape`` (a leading BOM is
    dropped), so bytes that are not UTF-8 reach the vectorizer unchanged.

    Args:
        source (str | os.PathLike): a file, or ``"-"`` for standard input.
        format (str): ``"auto"`` (by the suffix, see :func:`input_format`), ``"lines"``,
            ``"jsonl"`` or ``"csv"``. Default: ``"auto"``.

    Returns:
        Reviews: the texts, and how many empty lines or rows were skipped.

    Raises:
        MissingFile: ``source`` does not exist.
        InvalidInput: ``source`` is a folder, a JSON line is not an object with a
            ``"text"`` string, or a CSV file has no ``text`` column or a malformed row;
            the message names the file and line.
    """
    kind = input_format(source, format)
    name = "standard input" if os.fspath(source) == STDIN else os.fspath(source)
    text = _decode(_read_bytes(source))
    if kind == "csv":
        return _csv_reviews(text, name)
    texts: list[str] = []
    skipped = 0
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if kind == "jsonl" and line.strip():
            line = _json_text(line, f"{name}:{number}")
        if line.strip():
            texts.append(line)
        else:
            skipped += 1
    return Reviews(texts, skipped)


def _read_bytes(source: str | os.PathLike[str]) -> bytes:
    if os.fspath(source) == STDIN:
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is not None:
            data: bytes = buffer.read()
            return data
        return sys.stdin.read().encode("utf-8", "surrogateescape")
    path = Path(source)
    if path.is_dir():
        raise InvalidInput(f"--input {path} is a folder. Received: input={str(path)!r}; pass "
                           "a file of reviews (.jsonl, .csv, or one review per line).")
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise MissingFile(f"--input {path} does not exist. Received: input={str(path)!r}; "
                          "pass a file of reviews, or '-' for standard input.") from err


def _decode(data: bytes) -> str:
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")


def _encodable(text: str, where: str) -> str:
    """``text`` if it encodes back to bytes (a JSON ``\\ud800`` escape does not)."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as err:
        raise InvalidInput(
            f"{where}: the text holds a lone UTF-16 surrogate {text[err.start]!r}, which is "
            "no character. Received: an unpaired \\ud800-\\udfff escape; write the "
            "character itself or a complete surrogate pair."
        ) from err
    return text


def _json_text(line: str, where: str) -> str:
    example = 'e.g. {"text": "A wonderful film."}'
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{where}: not valid JSON ({err.msg}, column {err.colno}). Each "
                           f"line of a .jsonl file must be one JSON object, {example}.") from err
    if not isinstance(value, dict) or not isinstance(value.get(TEXT_COLUMN), str):
        received = (f"an object with keys {sorted(value)[:8]}" if isinstance(value, dict)
                    else f"a JSON {type(value).__name__}")
        if isinstance(value, dict) and TEXT_COLUMN in value:
            received = f'"text" is a JSON {type(value[TEXT_COLUMN]).__name__}'
        raise InvalidInput(f'{where}: each line must be a JSON object with a "text" string, '
                           f"{example}. Received: {received}.")
    return _encodable(value[TEXT_COLUMN], where)


def _csv_reviews(text: str, name: str) -> Reviews:
    # strict: an unclosed quote is an error, not the rest of the file read as one review.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    limit = csv.field_size_limit(2**31 - 1)  # reviews longer than csv's 128 KiB default
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"{name} is empty. Received: no header row; a .csv file needs "
                               "a header row with a text column, then one review per row.")
        columns = [i for i, cell in enumerate(header) if cell.strip() == TEXT_COLUMN]
        if len(columns) != 1:
            found = "two or more 'text' columns" if columns else f"columns {header[:20]}"
            raise InvalidInput(f"{name} needs one column named 'text' in its header row. "
                               f"Received: {found}; name the column of reviews text.")
        column = columns[0]
        texts: list[str] = []
        skipped = 0
        line = reader.line_num + 1
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                skipped += 1
            elif len(row) <= column:
                raise InvalidInput(
                    f"{name}:{line}: the row has {len(row)} fields and none under the text "
                    f"column (field {column + 1}). Received: a short row; quote fields that "
                    'hold commas, e.g. "Long, dull, loud.", or fill the row.')
            elif row[column].strip():
                texts.append(row[column])
            else:
                skipped += 1
            line = reader.line_num + 1
    except csv.Error as err:
        raise InvalidInput(f"{name}:{line}: not valid CSV ({err}). Received: a malformed row; "
                           'check its quotes: a quoted field must be closed, and a quote in '
                           'it doubled ("").') from err
    finally:
        csv.field_size_limit(limit)
    return Reviews(texts, skipped)


def shown(text: str, width: int = SHOWN_CHARS) -> str:
    """``text`` as one printable line: control characters as escapes (``\\n``, ``\\t``,
    ``\\x1b``), bytes that are not UTF-8 as ``\\xNN``, clipped to ``width`` characters
    with ``...``.

    Args:
        text (str): a review.
        width (int): the most characters shown. Default: ``80``.

    Returns:
        str: the line, without its newline.
    """
    line = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    line = line.translate(_ESCAPES)
    return line if len(line) <= width else line[:width - 3] + "..."


_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(32), 127]} | {9: "\\t", 10: "\\n", 13: "\\r"}


# The command line -----------------------------------------------------------------------
