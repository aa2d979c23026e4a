"""Reading the labelled reviews of a tar archive in place, never extracting it.

Only regular-file members are read.  A member with an absolute or ``..`` name refuses
the archive, as does a review-named link or device (an extracted copy would give Keras
another file's bytes there; skipping it would drop a review).  A truncated archive is an
error, never a partial load.  Either labelled subset is read: ``train/`` (the default)
or ``test/``; the other one's members are never read.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import logging
import lzma
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

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
from embeddings.files import atomic_file, cache_dir

log = logging.getLogger(__name__)

BLOCK = 512  # tar's header and data block
# Compressed streams by their magic bytes, and a reader of each.
_STREAMS: tuple[tuple[bytes, Callable[[IO[bytes]], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)
_FILE_TYPES = (b"0", b"\0", b"7")  # regular and contiguous files: what tarfile calls files
# Links, devices, folders and FIFOs: no data follows their header (tarfile: any other
# type's data does, whatever it is).
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")
_PIECE = 1 << 20  # tar bytes inflated at a time
_FILE, _FOLDER, _OTHER = "file", "folder", "other"


class _Corrupt(Exception):
    """The archive is truncated or damaged; ``first`` when not even its first header is
    a tar header (then it is not a tar archive)."""

    def __init__(self, why: str, first: bool = False) -> None:
        super().__init__(why)
        self.first = first


class _Member(NamedTuple):
    name: str
    kind: str  # _FILE, _FOLDER or _OTHER (a link, device or FIFO)
    size: int


_Picked = TypeVar("_Picked")


def _review_member(member: _Member, archive: str,
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
    if member.kind == _FOLDER or not parts or not _is_review(parts[-1]):
        return None
    limit = reviews.MAX_REVIEW_BYTES  # looked up now: the one limit folders read too
    for i, part in enumerate(parts[:-1]):
        if part in CLASSES and (parts[i - 1] == subset if i else subset == "train"):
            if member.kind != _FILE:
                raise DataSourceError(f"{archive}: the review {member.name} is a link or device, "
                                      "not a regular file. Use an archive of plain files.")
            if member.size > limit:
                raise DataSourceError(f"{archive}: the review {member.name} holds "
                                      f"{member.size:,} bytes, over the {limit:,} "
                                      "a review may have.")
            return "/".join(parts[:i]), "/".join(parts[i:]), CLASSES.index(part)
    return None


def _inflated(blob: bytes) -> Iterator[bytes]:
    """The tar bytes inside ``blob``, :data:`_PIECE` bytes at a time: gzip, bzip2 or xz
    (read by Python's own readers, as ``tarfile`` does: several streams, a checked
    length and checksum), or ``blob`` itself when it is not compressed.  The whole
    archive is never held inflated: the Stanford tarball holds 0.5 GB of tar, mostly
    members that are not read.

    Raises:
        _Corrupt: the compressed data is damaged or ends early.
    """
    opener = next((open_ for magic, open_ in _STREAMS if blob.startswith(magic)), None)
    if opener is None:  # an uncompressed archive
        yield from (blob[at:at + _PIECE] for at in range(0, len(blob), _PIECE))
        return
    produced = False
    with opener(io.BytesIO(blob)) as stream:
        while True:
            try:
                piece = stream.read(_PIECE)
            except EOFError as err:  # cut short, wherever
                raise _Corrupt(_brief(err)) from err
            except (OSError, zlib.error, lzma.LZMAError) as err:
                raise _Corrupt(_brief(err), first=not produced) from err
            if not piece:
                return
            produced = True
            yield piece


class _Tar:
    """The uncompressed archive as it is inflated, read in order; holds one piece of it
    and the member being read."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()
        self._at = 0  # where the unread bytes start in the buffer
        self.offset = 0  # bytes read or skipped so far

    def _fill(self, size: int) -> int:
        """Buffer at least ``size`` unread bytes if the archive has them; how many are."""
        while len(self._buffer) - self._at < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            del self._buffer[:self._at]
            self._at = 0
            self._buffer += piece
        return min(size, len(self._buffer) - self._at)

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer only where the archive ends)."""
        count = self._fill(size)
        with memoryview(self._buffer) as view:  # one copy, not two
            out = bytes(view[self._at:self._at + count])
        self._at += count
        self.offset += count
        return out

    def skip(self, size: int) -> int:
        """Pass over the next ``size`` bytes without copying them; how many there were."""
        done = 0
        while done < size:
            count = self._fill(min(size - done, _PIECE))
            if not count:
                break
            self._at += count
            done += count
        self.offset += done
        return done


def _number(field: bytes) -> int:
    """A header's numeric field: octal digits, or base-256 when its first bit is set."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header (``"<length> <key>=<value>\\n"`` each)."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data) and data[at:at + 1] != b"\0":
        space = data.index(b" ", at)
        end = at + int(data[at:space])
        key, _, value = data[space + 1:end - 1].partition(b"=")
        if end <= space or data[end - 1:end] != b"\n":
            raise ValueError("a malformed pax record")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                       "surrogateescape")
        at = end
    return records


def _members(tar: _Tar, pick: Callable[[_Member], _Picked | None]
             ) -> Iterator[tuple[_Picked, bytes]]:
    """The members of an uncompressed archive that ``pick`` picks (its answer, and the
    member's bytes), read in order; ``pick`` sees every member, and the data of the others
    is skipped.  ustar, GNU (long names) and pax (``path`` and ``size`` records) headers
    are read as ``tarfile`` reads them, every header's checksum checked.

    Raises:
        _Corrupt: a header is damaged, a member's data runs past the end, or the
            end-of-archive marker (two zero blocks) is missing.
    """
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        at = tar.offset
        header = tar.read(BLOCK)
        if header == bytes(BLOCK):
            if tar.read(BLOCK) == bytes(BLOCK):
                return
            raise _Corrupt("no end-of-archive marker after the last member")
        if len(header) < BLOCK:
            raise _Corrupt("no end-of-archive marker after the last member", first=at == 0)
        try:
            stored = _number(header[148:156])
            size = _number(header[124:136])
            if size < 0:
                raise ValueError("a negative size")
        except ValueError as err:
            raise _Corrupt(f"a damaged header at byte {at}", first=at == 0) from err
        summed = sum(header) - sum(header[148:156]) + 8 * 32  # the checksum field as spaces
        if stored != summed and stored != summed - 2 * sum(b for b in header if b > 127):
            raise _Corrupt(f"a header's checksum fails at byte {at}", first=at == 0)
        kind = header[156:157]
        if kind in (b"L", b"K", b"x", b"g"):
            data = _data(tar, size, at)
            try:
                if kind == b"L":
                    long_name = _text(data)
                elif kind == b"x":
                    pax = _pax(data)
            except ValueError as err:
                raise _Corrupt(f"a damaged pax header at byte {at}") from err
            continue
        name = _text(header[:100])
        if header[257:263] == b"ustar\0" and header[345] != 0:  # POSIX: a name prefix
            name = _text(header[345:500]) + "/" + name
        name = pax.get("path", long_name if long_name is not None else name)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError as err:
                raise _Corrupt(f"a damaged pax size at byte {at}") from err
        long_name, pax = None, {}
        if kind in _NO_DATA:
            size = 0
        folder = kind == b"5" or (kind == b"\0" and name.endswith("/"))
        picked = pick(_Member(name, _FOLDER if folder else _FILE if kind in _FILE_TYPES
                              else _OTHER, size))
        if picked is not None:
            yield picked, _data(tar, size, at)
        elif tar.skip(_padded(size)) < _padded(size):
            raise _Corrupt(f"the data of the member at byte {at} runs past the end")


def _padded(size: int) -> int:
    """Bytes of a member's data in the archive: ``size`` up to whole blocks."""
    return -(-size // BLOCK) * BLOCK


def _data(tar: _Tar, size: int, at: int) -> bytes:
    """The ``size`` bytes of data of the member whose header is at byte ``at``.

    Raises:
        _Corrupt: the archive ends inside them.
    """
    data = tar.read(_padded(size))
    if len(data) < _padded(size):
        raise _Corrupt(f"the data of the member at byte {at} runs past the end")
    return data[:size]


def _truncated(name: str, err: BaseException) -> DataSourceError:
    return DataSourceError(f"{name} is truncated or corrupt ({_brief(err)}). "
                           "Replace it with a complete copy.")


def _tar_reviews(blob: bytes, name: str, subset: str = "train") -> list[Review]:
    """The labelled reviews of ``subset`` in the tar archive ``blob`` (any compression).

    The archive's headers are read here, as it is inflated: ``tarfile`` took 0.69 s for
    IMDb's 25,000 training reviews, this 0.3 s.

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
    found: dict[str, dict[str, Review]] = {}
    try:
        for (tree, rel, label), raw in _members(
                _Tar(_inflated(blob)), lambda member: _review_member(member, name, subset)):
            found.setdefault(tree, {})[rel] = Review(rel, raw, label)
    except _Corrupt as err:
        if err.first:
            raise DataSourceError(f"{name} is not a tar archive. {_HOW_TO_POINT}") from err
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
    digest = hashlib.sha256(blob).hexdigest()
    return archive_reviews(blob, str(path), subset, digest), f"{path} (sha256 {digest})"


# Parsed archives -------------------------------------------------------------------------
# Reading IMDb's 25,000 training reviews out of their tarball takes 0.45 s, an eighth of
# the tutorial's whole run; the reviews of an archive that large are kept in the cache,
# under its sha256, as an Arrow file that every later run reads instead.

PARSED_VERSION = 1  # part of the file name: raise it when what the reader returns changes
PARSED_MIN_REVIEWS = 1_000  # a smaller archive is read faster than its file is written
_PARSED_COLUMNS = ("path", "raw", "label")
_PARSED_BATCH = 1_000  # reviews per record batch written


def parsed_path(digest: str, subset: str) -> Path:
    """Where the reviews of ``subset`` of the archive with sha256 ``digest`` are kept:
    ``$EMBEDDINGS_CACHE/imdb/reviews/<sha256>-<subset>-v<version>.arrow``."""
    return cache_dir() / "imdb" / "reviews" / f"{digest}-{subset}-v{PARSED_VERSION}.arrow"


def archive_reviews(blob: bytes, name: str, subset: str, digest: str) -> list[Review]:
    """The reviews of ``subset`` in the archive ``blob`` (sha256 ``digest``): read from
    the cache when an earlier run kept them (:func:`parsed_path`), else read from the
    archive (:func:`_tar_reviews`) and, from :data:`PARSED_MIN_REVIEWS` reviews on, kept.

    The file is written atomically; one that cannot be read (damaged, or from another
    version of pyarrow that cannot open it) is read around and written afresh, and a
    cache that cannot be written only costs the next run the reading.  It holds the
    reviews' exact bytes: Arrow data, nothing that is executed or unpickled.

    Raises:
        DataSourceError: see :func:`_tar_reviews`.
    """
    path = parsed_path(digest, subset)
    kept = _read_parsed(path)
    if kept is not None:
        return kept
    found = _tar_reviews(blob, name, subset)
    if len(found) >= PARSED_MIN_REVIEWS:
        _write_parsed(path, found)
    return found


def _read_parsed(path: Path) -> list[Review] | None:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
            if table.schema.names != list(_PARSED_COLUMNS):
                raise pa.ArrowInvalid(f"the columns are {table.schema.names}")
            columns = [table.column(c).to_pylist() for c in _PARSED_COLUMNS]
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as err:
        log.warning("Reading the archive again: its parsed copy %s is unreadable (%s)", path,
                    _brief(err))
        return None
    return [Review(*row) for row in zip(*columns, strict=True)]


def _write_parsed(path: Path, found: list[Review]) -> None:
    """Write ``found`` to ``path`` atomically, :data:`_PARSED_BATCH` reviews at a time (a
    whole-table copy would stay with pyarrow's allocator for the rest of the run)."""
    import numpy as np
    import pyarrow as pa

    from embeddings import arrow

    schema = pa.schema([("path", pa.large_string()), ("raw", pa.large_binary()),
                        ("label", pa.int8())])
    try:
        with atomic_file(path) as sink, pa.ipc.new_file(sink, schema) as writer:
            for start in range(0, len(found), _PARSED_BATCH):
                part = found[start:start + _PARSED_BATCH]
                writer.write_batch(pa.record_batch([
                    arrow.binary([r.path.encode() for r in part]).cast(pa.large_string()),
                    arrow.binary([r.raw for r in part]),
                    arrow.numbers(np.fromiter((r.label for r in part), np.int8, len(part))),
                ], schema=schema))
    except OSError as err:  # a read-only or full cache: the next run reads the archive
        log.warning("Could not keep the parsed reviews in %s (%s); later runs read the "
                    "archive again", path, _brief(err))
        return
    log.info("Kept the %d reviews read in %s (%.0f MB): later runs on this archive read "
             "them from there", len(found), path, path.stat().st_size / 2**20)


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
