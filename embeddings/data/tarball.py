"""Reading the labelled reviews of a tar archive in place, never extracting it.

Only regular-file members are read.  A member with an absolute or ``..`` name refuses
the archive, as does a review-named link or device (an extracted copy would give Keras
another file's bytes there; skipping it would drop a review).  A truncated archive is an
error, never a partial load.  Either labelled subset is read: ``train/`` (the default)
or ``test/``; the other one's members are never read.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import tarfile
import zlib
from pathlib import Path
from typing import IO, cast

from embeddings.data import reviews
from embeddings.data.reviews import (
    _HOW_TO_POINT,
    _HOW_TO_TEST,
    CLASSES,
    DataSourceError,
    Review,
    _brief,
    _checked,
    _is_review,
    _read_regular,
    check_subset,
)

_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks end every tar archive
_BROKEN_ARCHIVE = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def _review_member(member: tarfile.TarInfo, archive: str,
                   subset: str = "train") -> tuple[str, str, int] | None:
    """``(tree, path, label)`` when ``member`` is a review of ``subset``, else ``None``.

    A training review is a ``.txt`` file in ``neg/`` or ``pos/``, at the archive's top or
    under a ``train/`` folder; a test review one under a ``test/`` folder.  ``tree`` is
    the folder holding the class folders.

    Raises:
        DataSourceError: the member's name is absolute or has a ``..`` part (whatever it
            is), or a review is a link or device, or larger than
            :data:`~embeddings.data.reviews.MAX_REVIEW_BYTES`.
    """
    if member.name.startswith("/") or ".." in member.name.split("/"):
        raise DataSourceError(f"{archive} holds the unsafe member {member.name!r} (absolute or "
                              "`..` name); it is not read. Use a trusted copy of the archive.")
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if member.isdir() or not parts or not _is_review(parts[-1]):
        return None
    limit = reviews.MAX_REVIEW_BYTES  # looked up now: the one limit folders read too
    for i, part in enumerate(parts[:-1]):
        if part in CLASSES and (parts[i - 1] == subset if i else subset == "train"):
            if not member.isfile():
                raise DataSourceError(f"{archive}: the review {member.name} is a link or device, "
                                      "not a regular file. Use an archive of plain files.")
            if member.size > limit:
                raise DataSourceError(f"{archive}: the review {member.name} holds "
                                      f"{member.size:,} bytes, over the {limit:,} "
                                      "a review may have.")
            return "/".join(parts[:i]), "/".join(parts[i:]), CLASSES.index(part)
    return None


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    raw = handle.read() if handle is not None else b""
    if len(raw) != member.size:
        raise tarfile.ReadError(f"{member.name} ends after {len(raw)} of {member.size} bytes")
    return raw


def _check_complete(tar: tarfile.TarFile) -> None:
    """Raise unless the members end with the end-of-archive marker and the compressed
    stream is whole.  ``tarfile`` stops without a word where an archive cut at a member
    boundary ends, so the marker is what tells a whole archive from a truncated one."""
    stream = cast(IO[bytes], tar.fileobj)
    stream.seek(tar.offset)  # where the member headers stopped
    if stream.read(_END_OF_ARCHIVE) != bytes(_END_OF_ARCHIVE):
        raise tarfile.ReadError("no end-of-archive marker after the last member")
    while stream.read(1 << 20):  # decompress to the end: checks the stream's length and CRC
        pass


def _truncated(name: str, err: BaseException) -> DataSourceError:
    return DataSourceError(f"{name} is truncated or corrupt ({_brief(err)}). "
                           "Replace it with a complete copy.")


def _tar_reviews(blob: bytes, name: str, subset: str = "train") -> list[Review]:
    """The labelled reviews of ``subset`` in the tar archive ``blob`` (any compression).

    Args:
        blob (bytes): the archive's bytes.
        name (str): what to call it in messages (its path or URL).
        subset (str): ``"train"`` or ``"test"``. Default: ``"train"``.

    Returns:
        list[Review]: the reviews of the tree holding ``neg/`` and ``pos/`` (for
        ``"train"``, the training one when several do), in sorted-walk order.

    Raises:
        DataSourceError: not a tar archive, truncated or corrupt, an unsafe member, or no
            class folders of ``subset`` in it.
    """
    try:
        tar = tarfile.open(fileobj=io.BytesIO(blob))
    except EOFError as err:  # a gzip stream cut inside the first member
        raise _truncated(name, err) from err
    except _BROKEN_ARCHIVE as err:
        raise DataSourceError(f"{name} is not a tar archive. {_HOW_TO_POINT}") from err
    found: dict[str, dict[str, Review]] = {}
    try:
        with tar:
            for member in tar:
                review = _review_member(member, name, subset)
                if review is not None:
                    tree, rel, label = review
                    found.setdefault(tree, {})[rel] = Review(rel, _member_bytes(tar, member), label)
            _check_complete(tar)
    except _BROKEN_ARCHIVE as err:
        raise _truncated(name, err) from err
    if not found and subset == "test":
        raise DataSourceError(f"No test split in {name}: no `test/neg/` or `test/pos/` .txt "
                              f"files. {_HOW_TO_TEST}")
    if not found:
        raise DataSourceError(f"No `train/neg/` or `train/pos/` .txt files in {name}. "
                              f"{_HOW_TO_POINT}")
    # Prefer the training folder when several trees hold neg/ and pos/.
    tree = max(found, key=lambda b: (b.endswith("train"), len(found[b])))
    return _checked(list(found[tree].values()), f"{name}:{tree or '/'}")


def _read_archive(path: Path, subset: str = "train") -> tuple[list[Review], str]:
    """The reviews of ``subset`` in the tarball at ``path``, and its description (path and
    sha256)."""
    blob = _read_regular(path)
    return (_tar_reviews(blob, str(path), subset),
            f"{path} (sha256 {hashlib.sha256(blob).hexdigest()})")


def read_tarball(archive: str | os.PathLike[str], subset: str = "train") -> list[Review]:
    """Read the labelled reviews of one subset straight from an aclImdb tarball.

    The class folders are ``train/neg`` and ``train/pos`` at any depth
    (``aclImdb/train/...`` in the original archive), or ``neg``/``pos`` at its top; for
    the test subset ``test/neg`` and ``test/pos`` at any depth.  Only regular-file
    members are read; see the module's docstring for what is refused.

    Args:
        archive (str | os.PathLike): the tarball (gzip, bzip2, xz or uncompressed).
        subset (str): ``"train"`` or ``"test"``. Default: ``"train"``.

    Returns:
        list[Review]: the reviews in sorted-walk order.

    Raises:
        InvalidInput: an unknown ``subset``.
        DataSourceError: not a readable regular file, not a tar archive, truncated or
            corrupt, an unsafe member, or no class folders of ``subset`` in it.
    """
    return _read_archive(Path(archive), check_subset(subset))[0]
