"""Labelled review files: the :class:`Review` record, the Keras listing order, and
reading regular files and ``aclImdb`` folders where they are, either labelled subset
(:data:`SUBSETS`: ``train/`` for training and validation, ``test/`` for evaluation).

Only regular files are read: a FIFO or device named ``*.txt`` is refused, never opened.
Each review's bytes are kept exactly, up to :data:`MAX_REVIEW_BYTES`.  The messages and
checks that every source shares (:class:`DataSourceError`, :func:`_checked`,
:func:`_brief`) live here too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from embeddings.errors import InvalidInput

CLASSES = ("neg", "pos")
SUBSETS = ("train", "test")  # the labelled splits of the archive: aclImdb/train, aclImdb/test
# A larger "review" is a mistake that would only exhaust memory.  Folders and tarballs
# both read it from this module at call time, so one patch of it covers both.
MAX_REVIEW_BYTES = 256 << 20
_HOW_TO_POINT = "Use --data (or EMBEDDINGS_DATA) with an aclImdb folder or aclImdb_v1.tar.gz."
_HOW_TO_TEST = ("Use --data with a source that has the test split: the full aclImdb folder, "
                "aclImdb_v1.tar.gz or 'hub'.")
_FILE_KINDS = {stat.S_IFDIR: "folder", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket",
               stat.S_IFCHR: "device", stat.S_IFBLK: "device"}


class DataSourceError(InvalidInput):
    """The IMDb source is missing, malformed or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class Review:
    """One labelled review file."""

    path: str  # "neg/0_3.txt": relative to the folder holding neg/ and pos/
    raw: bytes  # the file's exact bytes
    label: int  # 0 = neg, 1 = pos


def _walk_key(path: str) -> tuple[int, str, str]:
    """Keras's listing order: class, then the sorted ``os.walk`` root, then the file name."""
    cls, _, rest = path.partition("/")
    root, _, name = rest.rpartition("/")
    return CLASSES.index(cls), f"{cls}/{root}".rstrip("/"), name


def _is_review(name: str) -> bool:
    return name.lower().endswith(".txt")


def _checked(reviews: list[Review], where: str) -> list[Review]:
    for cls in CLASSES:
        if not any(r.path.startswith(cls + "/") for r in reviews):
            raise DataSourceError(
                f"No .txt reviews under `{cls}/` in {where}: both `neg/` and `pos/` need some. "
                f"{_HOW_TO_POINT}"
            )
    reviews.sort(key=lambda r: _walk_key(r.path))
    return reviews


def _brief(err: BaseException | str, width: int = 80) -> str:
    """The first line of an error's message (its type when it has none), clipped."""
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    return first if len(first) <= width else first[: width - 3] + "..."


# Files and folders -------------------------------------------------------------------


def _not_regular(path: Path, mode: int) -> DataSourceError:
    kind = _FILE_KINDS.get(stat.S_IFMT(mode), "special file")
    return DataSourceError(f"{path} is a {kind}, not a regular file; only regular files are "
                           "read. Remove it or replace it with a file.")


def _read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Anything else is refused before it is opened: reading a FIFO would wait forever.  It
    is opened non-blocking and checked again, in case it was swapped in between.

    Raises:
        DataSourceError: not a regular file, too large, or unreadable.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(path, info.st_mode)
            if limit is not None and info.st_size > limit:
                raise DataSourceError(f"{path} holds {info.st_size:,} bytes, over the "
                                      f"{limit:,} a review may have. Remove it.")
            return f.read()
    except OSError as err:
        raise DataSourceError(f"Cannot read {path}: {err.strerror or err}.") from err


def check_subset(subset: str) -> str:
    """``subset`` if it names a labelled split of the archive, ``"train"`` or ``"test"``.

    Raises:
        InvalidInput: any other value.
    """
    if subset not in SUBSETS:
        raise InvalidInput(f"subset must be one of {SUBSETS}. Received: subset={subset!r}; "
                           "use 'train' (training and validation) or 'test'.")
    return subset


def _class_root(root: Path, subset: str = "train") -> Path:
    """The folder holding ``neg/`` and ``pos/``.

    For ``"train"``: ``root``, ``root/train`` or ``root/aclImdb/train``.  For ``"test"``:
    ``root/test`` or ``root/aclImdb/test``, or ``root`` itself when it is named ``test``
    (never a ``train`` folder, so a training tree is never scored as the test split).
    """
    if subset == "test":
        candidates = [root / "test", root / "aclImdb" / "test"]
        if root.name == "test":
            candidates.insert(0, root)
    else:
        candidates = [root, root / "train", root / "aclImdb" / "train"]
    for candidate in candidates:
        if all((candidate / cls).is_dir() for cls in CLASSES):
            return candidate
    if subset == "test":
        raise DataSourceError(
            f"No test split in {root}: no `neg/` and `pos/` folders in its test/ or "
            f"aclImdb/test/. {_HOW_TO_TEST}"
        )
    raise DataSourceError(
        f"No `neg/` and `pos/` folders in {root} (nor in its train/ or aclImdb/train/). "
        f"{_HOW_TO_POINT}"
    )


def read_directory(root: str | os.PathLike[str], subset: str = "train") -> list[Review]:
    """Read the labelled reviews of an ``aclImdb`` directory in sorted-walk order.

    ``unsup/``, the other subset and files beside the class folders are ignored.  Each
    review's bytes are kept exactly (empty, huge or not UTF-8 alike), up to
    :data:`MAX_REVIEW_BYTES`.

    Args:
        root (str | os.PathLike): ``aclImdb``, ``aclImdb/train``, or a folder holding
            ``aclImdb``; for the test subset ``aclImdb``, ``aclImdb/test`` or a folder
            holding ``aclImdb``.
        subset (str): ``"train"`` (``train/neg``, ``train/pos``) or ``"test"``
            (``test/neg``, ``test/pos``). Default: ``"train"``.

    Returns:
        list[Review]: the ``neg`` reviews, then the ``pos`` reviews.

    Raises:
        InvalidInput: an unknown ``subset``.
        DataSourceError: no class folders, no ``.txt`` files, or a review that is not a
            readable regular file (a FIFO, socket or device is named, never opened).
    """
    base = _class_root(Path(root), check_subset(subset))
    reviews = []
    for label, cls in enumerate(CLASSES):
        for dirpath, _, files in os.walk(base / cls):
            for name in files:
                if _is_review(name):
                    full = Path(dirpath) / name
                    raw = _read_regular(full, MAX_REVIEW_BYTES)
                    reviews.append(Review(full.relative_to(base).as_posix(), raw, label))
    return _checked(reviews, str(base))
