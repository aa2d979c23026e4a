"""Your own corpus: Parquet, Arrow, JSON Lines or CSV files, a folder of them, or a
Hugging Face hub dataset, read through ``datasets`` as a memory-mapped Arrow table.

:func:`corpus_source` says whether a ``--data`` value names such a corpus (by suffix, by
the files a folder holds, or as a hub name); :func:`read_corpus` loads it with
``datasets.load_dataset(<builder>, data_files=..., split="train")`` (or
``load_dataset(<name>, split="train")`` for a hub name), checks the text and label
columns, and returns the table with just those two, named ``text`` and ``label``.  Nothing
is copied into Python objects: ``datasets`` converts the files once into Arrow files in
its cache (``HF_DATASETS_CACHE``) and maps them; later runs reuse them.

A folder's files are read in sorted path order (subfolders included), each file's rows in
order; that row order is what the split (:mod:`embeddings.data.corpus`) permutes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from embeddings.data.hub import HUB_DATASET
from embeddings.data.reviews import DataSourceError, _brief

if TYPE_CHECKING:
    import datasets

# File suffix -> the ``datasets`` builder that reads it.
BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json",
            ".csv": "csv"}
HUB_PREFIX = "hub:"
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name, as the hub spells them
_FORMATS = "Parquet, Arrow, JSON Lines or CSV"


@dataclass(frozen=True)
class CorpusSource:
    """What :func:`read_corpus` loads: ``data_files`` for ``builder``, or a hub ``name``."""

    builder: str | None  # "parquet", "arrow", "json", "csv"; None for a hub dataset
    files: tuple[str, ...]  # the data files, in reading order; () for a hub dataset
    name: str  # how runs describe it: the path given, or "hub:<owner>/<name>"


def corpus_source(source: str | os.PathLike[str]) -> CorpusSource | None:
    """The corpus ``source`` names, or ``None`` when it is an IMDb source (an ``aclImdb``
    folder or tarball, ``"hub"``, ``hub:stanfordnlp/imdb``, a URL).

    A corpus is a file with a suffix of :data:`BUILDERS`, a folder holding such files (in
    it or below), ``hub:<owner>/<name>``, or ``<owner>/<name>`` that is no local path.

    Raises:
        DataSourceError: a folder holding files of two formats.
    """
    text = os.fspath(source)
    if text.startswith(HUB_PREFIX):
        name = text[len(HUB_PREFIX):]
        return None if name == HUB_DATASET else CorpusSource(None, (), text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder(path)
    suffix = path.suffix.lower()
    if suffix in BUILDERS:
        return CorpusSource(BUILDERS[suffix], (str(path),), text)
    if not path.exists() and _HUB_NAME.fullmatch(text) and text != HUB_DATASET:
        return CorpusSource(None, (), HUB_PREFIX + text)
    return None


def _folder(path: Path) -> CorpusSource | None:
    """The corpus files under ``path`` (hidden ones skipped), or ``None`` if it has none."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in BUILDERS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        return None
    builders = sorted({BUILDERS[p.suffix.lower()] for p in files})
    if len(builders) > 1:
        raise DataSourceError(
            f"The corpus folder {path} holds files of several formats ({', '.join(builders)}). "
            "Keep one format per folder, or pass one file with --data.")
    return CorpusSource(builders[0], tuple(str(p) for p in files), str(path))


def read_corpus(source: CorpusSource, text_column: str = "text",
                label_column: str = "label") -> tuple[datasets.Dataset, np.ndarray]:
    """Load ``source`` with ``datasets`` and keep its checked text and label columns.

    Args:
        source (CorpusSource): what :func:`corpus_source` found.
        text_column (str): the column holding each row's text. Default: ``"text"``.
        label_column (str): the column holding each row's label, 0/1 or false/true.
            Default: ``"label"``.

    Returns:
        tuple[datasets.Dataset, np.ndarray]: the rows in file order, memory-mapped, with
        the columns ``text`` (string) and ``label`` (the file's integer or boolean type);
        and the ``(N,)`` int64 labels.

    Raises:
        DataSourceError: ``datasets`` cannot read it, a column is missing, the text column
            holds no strings or a null, or a label is not 0/1.
    """
    import datasets

    try:
        if source.builder is None:
            rows = datasets.load_dataset(source.name[len(HUB_PREFIX):], split="train")
        else:
            rows = datasets.load_dataset(source.builder, data_files=list(source.files),
                                         split="train")
    except Exception as err:  # noqa: BLE001 - datasets raises many types for bad files
        what = "the hub dataset" if source.builder is None else "the corpus"
        raise DataSourceError(f"Cannot load {what} {source.name}: {_brief(err, 160)}. Use "
                              f"--data with {_FORMATS} files that hold a text and a label "
                              "column, or a hub dataset with a train split.") from err
    found = rows.column_names
    missing = [(flag, name) for flag, name in (("--text-column", text_column),
                                               ("--label-column", label_column))
               if name not in found]
    if missing:
        raise DataSourceError(
            f"The corpus {source.name} has no column "
            + " and no column ".join(repr(name) for _, name in missing)
            + f"; its columns are {', '.join(map(repr, found))}. Name the right ones with "
            + " and ".join(f"{flag} NAME" for flag, _ in missing) + ".")
    table = rows.with_format("arrow")
    _check_texts(table[text_column], text_column, source.name)
    labels = check_labels(table[label_column], label_column, source.name)
    rows = rows.select_columns([text_column, label_column])
    renames = {old: new for old, new in ((text_column, "text"), (label_column, "label"))
               if old != new}
    return (rows.rename_columns(renames) if renames else rows), labels


def _check_texts(column: pa.ChunkedArray, name: str, where: str) -> None:
    """Refuse a text column that holds no strings, or a null (an absent text)."""
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        raise DataSourceError(
            f"Column {name!r} of {where} holds {kind} values, not texts. Point --text-column "
            "at the column of texts.")
    if column.null_count:
        row = _first(np.asarray(column.is_null()))
        raise DataSourceError(
            f"Column {name!r} of {where} has no text in row {row} (null; {column.null_count:,} "
            "rows in all). Drop those rows or fill them with a text.")


def check_labels(column: pa.ChunkedArray, name: str, where: str) -> np.ndarray:
    """Each row's label as int64, refusing anything but 0/1 or false/true.

    Args:
        column (pa.ChunkedArray): the label column.
        name (str): its name, for the message.
        where (str): the corpus, for the message.

    Returns:
        np.ndarray: ``(N,)`` int64 labels.

    Raises:
        DataSourceError: a label type other than integer or boolean, a null, or a value
            other than 0 and 1; the message names the column, the value and the fix.
    """
    fix = ("Map the labels to 0 (negative) and 1 (positive), or point --label-column at a "
           "column that holds them.")
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        raise DataSourceError(f"Column {name!r} of {where} holds {kind} values "
                              f"(row 0: {column[0].as_py()!r}); labels must be 0 or 1 "
                              f"(or false/true). {fix}")
    if column.null_count:
        row = _first(np.asarray(column.is_null()))
        raise DataSourceError(f"Column {name!r} of {where} has no label in row {row} (null); "
                              f"labels must be 0 or 1 (or false/true). {fix}")
    labels = np.asarray(column).astype(np.int64)  # (N,): one copy, bools as 0/1
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        row = _first(bad)
        raise DataSourceError(f"Column {name!r} of {where} holds {labels[row]} (row {row}); "
                              f"labels must be 0 or 1 (or false/true). {fix}")
    return labels


def _first(mask: np.ndarray) -> int:
    """The position of the first true entry of a boolean array that has one."""
    return int(np.argmax(mask))
