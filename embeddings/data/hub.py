"""The Hugging Face hub's copy of the IMDb reviews, the training files' names restored.

The hub's rows carry no file names, but Keras's split depends on its sorted walk over
them, so each training row is matched by (text, label) to a packaged table of the 25,000
training files, ``embeddings/imdb_train_index.tsv.gz``, which :func:`write_index` makes
from the archive.  The test split needs no names (evaluation does not depend on the
order): its rows are named after their position, ``neg/hub-00017.txt``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from embeddings.data.reviews import (
    _HOW_TO_POINT,
    CLASSES,
    DataSourceError,
    Review,
    _brief,
    _checked,
    check_subset,
)
from embeddings.files import atomic_write_bytes

HUB_DATASET = "stanfordnlp/imdb"
# One line per training file in sorted-walk order: "<path>\t<row key>" (see _row_key).
_INDEX_FILE = Path(__file__).parent.parent / "imdb_train_index.tsv.gz"


def _row_key(raw: bytes, label: int) -> str:
    return hashlib.sha256(bytes([label]) + raw).hexdigest()[:16]


def write_index(reviews: Iterable[Review], path: str | os.PathLike[str]) -> None:
    """Write the table that maps hub rows (text, label) back to IMDb file names."""
    lines = "".join(f"{r.path}\t{_row_key(r.raw, r.label)}\n" for r in reviews)
    atomic_write_bytes(path, gzip.compress(lines.encode(), mtime=0))


def read_hub(name: str = HUB_DATASET, index: str | os.PathLike[str] = _INDEX_FILE,
             subset: str = "train") -> list[Review]:
    """Load a labelled split from the Hugging Face hub, the training file names restored.

    The hub's rows carry no file names and follow the archive's order, but the
    split depends on Keras's sorted walk over file names, so each training row is
    matched by (text, label) to the packaged table of the 25,000 training files.
    Identical duplicate reviews are interchangeable.  The test split's rows are not
    in that table and need no names: each is named after its row,
    ``<class>/hub-<row>.txt`` (zero-padded), so they keep the hub's order within a class.

    Args:
        name (str): the dataset. Default: :data:`HUB_DATASET`.
        index (str | os.PathLike): the table of training files. Default: the packaged one.
        subset (str): ``"train"`` or ``"test"``. Default: ``"train"``.

    Returns:
        list[Review]: the reviews in sorted-walk order.

    Raises:
        InvalidInput: an unknown ``subset``.
        DataSourceError: ``datasets`` cannot load it, or a training row is not an IMDb
            training file.
    """
    import datasets

    check_subset(subset)
    try:
        rows = datasets.load_dataset(name, split=subset)
    except Exception as err:  # noqa: BLE001 - datasets raises many types when offline
        raise DataSourceError(f"Cannot load the hub dataset {name}: {_brief(err, 160)}") from err
    if subset == "test":
        return _named_by_row(rows["text"], rows["label"], f"hub dataset {name} (test)")
    by_key: dict[str, list[str]] = {}
    for line in gzip.decompress(Path(index).read_bytes()).decode().splitlines():
        rel, key = line.split("\t")
        by_key.setdefault(key, []).append(rel)
    reviews = []
    for text, label in zip(rows["text"], rows["label"], strict=True):
        raw = text.encode("utf-8", "surrogateescape")
        names = by_key.get(_row_key(raw, int(label)))
        if not names:
            raise DataSourceError(
                f"A row of {name} is not one of the IMDb training files this package knows "
                f"(label={label}, text starts {text[:60]!r}). {_HOW_TO_POINT}"
            )
        reviews.append(Review(names.pop(), raw, int(label)))
    return _checked(reviews, f"hub dataset {name}")


def _named_by_row(texts: list[str], labels: list[int], where: str) -> list[Review]:
    """Rows without file names as reviews named ``<class>/hub-<row>.txt``.

    Raises:
        DataSourceError: a label other than 0 or 1, or a class without rows.
    """
    width = len(str(max(len(texts) - 1, 0)))
    reviews = []
    for row, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if label not in (0, 1):
            raise DataSourceError(f"Row {row} of {where} has label {label!r}; IMDb's labels "
                                  f"are 0 (neg) and 1 (pos). {_HOW_TO_POINT}")
        raw = text.encode("utf-8", "surrogateescape")
        reviews.append(Review(f"{CLASSES[label]}/hub-{row:0{width}d}.txt", raw, int(label)))
    return _checked(reviews, where)
