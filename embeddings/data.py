"""IMDb reviews in the tutorial's split and order.

:func:`load_imdb` returns the training and validation subsets that
``keras.utils.text_dataset_from_directory(..., validation_split=0.2, seed=123)``
makes, each as a :class:`datasets.Dataset` whose rows are already in the order
the tutorial's cached tf.data pipeline yields them in every epoch
(``PARITY.md`` section 6).  The training loop only walks the rows.

Sources, tried in this order when none is given: ``$EMBEDDINGS_DATA``, the local
cache (``$EMBEDDINGS_CACHE``, default ``~/.cache/embeddings``), the Hugging Face
dataset ``stanfordnlp/imdb``, and the original Stanford archive.

Nothing is ever extracted.  A folder's ``.txt`` files are read where they are, and
only regular files (a FIFO or device named ``*.txt`` is refused, never opened).  A
tarball is read in place, regular-file members only: a member with an absolute or
``..`` name refuses the archive, as does a review-named link or device (an extracted
copy would give Keras another file's bytes there; skipping it would drop a review);
a truncated archive is an error, never a partial load.

Downloads (:func:`read_url`) are kept whole and content-addressed:
``$EMBEDDINGS_CACHE/imdb/<sha256>.tar.gz`` beside ``<sha256>.json`` (source URL,
sha256, size, date), staged in a claimed ``.download-*`` folder and renamed into
place, and re-hashed on every use.  The Stanford URL and the default source use only
the entry with the archive's published sha256; another URL may pin one pip-style,
``https://host/x.tar.gz#sha256=<hex>``, or else reuses the entry whose record names
it (re-verified against its recorded sha256).  The extracted ``aclImdb`` folder that
older versions cached is no longer trusted, and ignored.

Each row holds ``text`` (str), ``label`` (0 = neg, 1 = pos), ``path`` (relative
to the class folders' parent, e.g. ``neg/0_3.txt``) and ``raw``: ``None`` when
the file is valid UTF-8 (then ``text`` is lossless), else the file's exact bytes
(``text`` then shows them with U+FFFD).  :func:`exact_texts` picks the lossless
form, which is what the vectorizer must see to match TensorFlow.
"""

from __future__ import annotations

import datetime
import functools
import gzip
import hashlib
import http.client
import io
import json
import logging
import lzma
import math
import os
import re
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np

from embeddings.errors import InvalidInput
from embeddings.files import atomic_write_bytes, atomic_write_json, cache_dir, claim, sweep
from embeddings.tfrandom import DEFAULT_GRAPH_SEED, shuffle_order

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

CLASSES = ("neg", "pos")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
HUB_DATASET = "stanfordnlp/imdb"
MAX_REVIEW_BYTES = 256 << 20  # a larger "review" is a mistake that would only exhaust memory
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte; $EMBEDDINGS_DOWNLOAD_TIMEOUT overrides it
# One line per training file in sorted-walk order: "<path>\t<row key>" (see _row_key).
_INDEX_FILE = Path(__file__).with_name("imdb_train_index.tsv.gz")
_HOW_TO_POINT = "Use --data (or EMBEDDINGS_DATA) with an aclImdb folder or aclImdb_v1.tar.gz."
_STAGING = ".download-"  # prefix of the claimed folders downloads are staged in
_SHA256 = re.compile(r"[0-9a-f]{64}")
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks end every tar archive
_BROKEN_ARCHIVE = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # IncompleteRead is no OSError
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


def _class_root(root: Path) -> Path:
    """The folder holding ``neg/`` and ``pos/``: ``root``, ``root/train`` or
    ``root/aclImdb/train``."""
    for candidate in (root, root / "train", root / "aclImdb" / "train"):
        if all((candidate / cls).is_dir() for cls in CLASSES):
            return candidate
    raise DataSourceError(
        f"No `neg/` and `pos/` folders in {root} (nor in its train/ or aclImdb/train/). "
        f"{_HOW_TO_POINT}"
    )


def read_directory(root: str | os.PathLike[str]) -> list[Review]:
    """Read the labelled reviews of an ``aclImdb`` directory in sorted-walk order.

    ``unsup/``, ``test/`` and files beside the class folders are ignored.  Each review's
    bytes are kept exactly (empty, huge or not UTF-8 alike), up to
    :data:`MAX_REVIEW_BYTES`.

    Args:
        root (str | os.PathLike): ``aclImdb``, ``aclImdb/train``, or a folder holding ``aclImdb``.

    Returns:
        list[Review]: the ``neg`` reviews, then the ``pos`` reviews.

    Raises:
        DataSourceError: no class folders, no ``.txt`` files, or a review that is not a
            readable regular file (a FIFO, socket or device is named, never opened).
    """
    base = _class_root(Path(root))
    reviews = []
    for label, cls in enumerate(CLASSES):
        for dirpath, _, files in os.walk(base / cls):
            for name in files:
                if _is_review(name):
                    full = Path(dirpath) / name
                    raw = _read_regular(full, MAX_REVIEW_BYTES)
                    reviews.append(Review(full.relative_to(base).as_posix(), raw, label))
    return _checked(reviews, str(base))


# Tarballs ----------------------------------------------------------------------------


def _review_member(member: tarfile.TarInfo, archive: str) -> tuple[str, str, int] | None:
    """``(tree, path, label)`` when ``member`` is a review, else ``None``.

    A review is a ``.txt`` file in ``neg/`` or ``pos/``, at the archive's top or under a
    ``train/`` folder; ``tree`` is the folder holding the class folders.

    Raises:
        DataSourceError: the member's name is absolute or has a ``..`` part (whatever it
            is), or a review is a link or device, or larger than :data:`MAX_REVIEW_BYTES`.
    """
    if member.name.startswith("/") or ".." in member.name.split("/"):
        raise DataSourceError(f"{archive} holds the unsafe member {member.name!r} (absolute or "
                              "`..` name); it is not read. Use a trusted copy of the archive.")
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if member.isdir() or not parts or not _is_review(parts[-1]):
        return None
    for i, part in enumerate(parts[:-1]):
        if part in CLASSES and (i == 0 or parts[i - 1] == "train"):
            if not member.isfile():
                raise DataSourceError(f"{archive}: the review {member.name} is a link or device, "
                                      "not a regular file. Use an archive of plain files.")
            if member.size > MAX_REVIEW_BYTES:
                raise DataSourceError(f"{archive}: the review {member.name} holds "
                                      f"{member.size:,} bytes, over the {MAX_REVIEW_BYTES:,} "
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


def _tar_reviews(blob: bytes, name: str) -> list[Review]:
    """The labelled training reviews in the tar archive ``blob`` (any compression).

    Args:
        blob (bytes): the archive's bytes.
        name (str): what to call it in messages (its path or URL).

    Returns:
        list[Review]: the reviews of the tree holding ``neg/`` and ``pos/`` (the training
        one when several do), in sorted-walk order.

    Raises:
        DataSourceError: not a tar archive, truncated or corrupt, an unsafe member, or no
            class folders in it.
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
                review = _review_member(member, name)
                if review is not None:
                    tree, rel, label = review
                    found.setdefault(tree, {})[rel] = Review(rel, _member_bytes(tar, member), label)
            _check_complete(tar)
    except _BROKEN_ARCHIVE as err:
        raise _truncated(name, err) from err
    if not found:
        raise DataSourceError(f"No `train/neg/` or `train/pos/` .txt files in {name}. "
                              f"{_HOW_TO_POINT}")
    # Prefer the training folder when several trees hold neg/ and pos/.
    tree = max(found, key=lambda b: (b.endswith("train"), len(found[b])))
    return _checked(list(found[tree].values()), f"{name}:{tree or '/'}")


def _read_archive(path: Path) -> tuple[list[Review], str]:
    """The reviews of the tarball at ``path``, and its description (path and sha256)."""
    blob = _read_regular(path)
    return _tar_reviews(blob, str(path)), f"{path} (sha256 {hashlib.sha256(blob).hexdigest()})"


def read_tarball(archive: str | os.PathLike[str]) -> list[Review]:
    """Read the labelled training reviews straight from an aclImdb tarball.

    The class folders are ``train/neg`` and ``train/pos`` at any depth
    (``aclImdb/train/...`` in the original archive), or ``neg``/``pos`` at its top.  Only
    regular-file members are read; see the module's docstring for what is refused.

    Args:
        archive (str | os.PathLike): the tarball (gzip, bzip2, xz or uncompressed).

    Returns:
        list[Review]: the reviews in sorted-walk order.

    Raises:
        DataSourceError: not a readable regular file, not a tar archive, truncated or
            corrupt, an unsafe member, or no class folders in it.
    """
    return _read_archive(Path(archive))[0]


# The Hugging Face hub ------------------------------------------------------------------


def _row_key(raw: bytes, label: int) -> str:
    return hashlib.sha256(bytes([label]) + raw).hexdigest()[:16]


def write_index(reviews: Iterable[Review], path: str | os.PathLike[str]) -> None:
    """Write the table that maps hub rows (text, label) back to IMDb file names."""
    lines = "".join(f"{r.path}\t{_row_key(r.raw, r.label)}\n" for r in reviews)
    atomic_write_bytes(path, gzip.compress(lines.encode(), mtime=0))


def read_hub(name: str = HUB_DATASET, index: str | os.PathLike[str] = _INDEX_FILE) -> list[Review]:
    """Load the training split from the Hugging Face hub and restore the file names.

    The hub's rows carry no file names and follow the archive's order, but the
    split depends on Keras's sorted walk over file names, so each row is matched
    by (text, label) to the packaged table of the 25,000 training files.
    Identical duplicate reviews are interchangeable.

    Raises:
        DataSourceError: ``datasets`` cannot load it, or a row is not an IMDb training file.
    """
    import datasets

    try:
        rows = datasets.load_dataset(name, split="train")
    except Exception as err:  # noqa: BLE001 - datasets raises many types when offline
        raise DataSourceError(f"Cannot load the hub dataset {name}: {err}") from err
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


# The download cache --------------------------------------------------------------------


def imdb_cache(cache: Path | None = None) -> Path:
    """The folder of downloaded archives: ``<cache>/imdb``.

    The extracted ``<cache>/aclImdb`` folder of older versions carries no checksum: it is
    ignored (and a warning says so, once).

    Args:
        cache (Path | None): the cache folder. Default: :func:`cache_dir`.

    Returns:
        Path: the folder (it may not exist yet).
    """
    cache = cache or cache_dir()
    _warn_legacy(cache)
    return cache / "imdb"


@functools.cache
def _warn_legacy(cache: Path) -> None:
    """Say once per cache that its old extracted ``aclImdb`` folder is not used."""
    legacy = cache / "aclImdb"
    if legacy.is_dir():
        log.warning("Ignoring %s: extracted downloads carry no checksum and are no longer "
                    "used; delete it to free the space.", legacy)


def _expected_digest(url: str) -> tuple[str, str | None]:
    """``url`` without its fragment, and the sha256 it must have: its ``#sha256=`` pin,
    the published one for the Stanford URL, else ``None``.

    Raises:
        DataSourceError: a fragment other than ``#sha256=<64 hex digits>``.
    """
    address, fragment = urllib.parse.urldefrag(url)
    if not fragment:
        return address, IMDB_SHA256 if address == IMDB_URL else None
    digest = fragment.removeprefix("sha256=").lower()
    if not fragment.startswith("sha256=") or not _SHA256.fullmatch(digest):
        raise DataSourceError(f"The URL {url} ends in #{fragment}: the only fragment understood "
                              "is #sha256=<64 hex digits>, the archive's checksum.")
    return address, digest


def _records(folder: Path) -> list[dict[str, Any]]:
    """The well-formed records in ``folder`` whose archive is there, newest first."""
    records = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        try:
            record = json.loads(_read_regular(path))
        except (DataSourceError, ValueError):
            continue
        if (isinstance(record, dict) and record.get("sha256") == path.stem
                and _SHA256.fullmatch(path.stem) and isinstance(record.get("source"), str)
                and path.with_suffix(".tar.gz").is_file()):
            records.append(record)
    return sorted(records, key=lambda r: str(r.get("downloaded", "")), reverse=True)


def _find_entry(folder: Path, address: str, digest: str | None) -> dict[str, Any] | None:
    """The record of the entry to use: the one named ``digest`` when a checksum is
    expected, else the newest one downloaded from ``address``; ``None`` when none is."""
    key, value = ("sha256", digest) if digest is not None else ("source", address)
    return next((record for record in _records(folder) if record[key] == value), None)


def _read_entry(folder: Path, record: dict[str, Any]) -> tuple[list[Review], str]:
    """The reviews of a cache entry, after re-hashing it, and its description.

    Raises:
        DataSourceError: the archive's sha256 is not the one in its name and record.
    """
    archive = folder / f"{record['sha256']}.tar.gz"
    blob = _read_regular(archive)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record["sha256"]:
        raise DataSourceError(f"The cached archive {archive} is corrupt (sha256 {digest[:12]}...): "
                              "delete it and run again to download it afresh.")
    where = f"{record['source']} (sha256 {digest}, cached as {archive})"
    return _tar_reviews(blob, str(archive)), where


def _cached_imdb(folder: Path) -> tuple[list[Review], str]:
    """The cache entry of the Stanford archive (by its published sha256)."""
    record = _find_entry(folder, IMDB_URL, IMDB_SHA256)
    if record is None:
        raise DataSourceError("not downloaded yet")
    return _read_entry(folder, record)


# Downloads ---------------------------------------------------------------------------


def download_timeout() -> float:
    """Seconds a download may wait for a byte: ``$EMBEDDINGS_DOWNLOAD_TIMEOUT``, else
    :data:`DOWNLOAD_TIMEOUT`.

    Raises:
        InvalidInput: the variable is not a positive number.
    """
    text = os.environ.get("EMBEDDINGS_DOWNLOAD_TIMEOUT", "").strip()
    if not text:
        return DOWNLOAD_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise InvalidInput(f"EMBEDDINGS_DOWNLOAD_TIMEOUT must be a positive number of seconds. "
                           f"Received: {text!r}; unset it for {DOWNLOAD_TIMEOUT:g}.")
    return seconds


def _download_error(url: str, err: Exception, timeout: float) -> DataSourceError:
    """One line for a failed request: the HTTP status, the network's reason, or a timeout."""
    if isinstance(err, urllib.error.HTTPError):
        err.close()
        reason = f"HTTP {err.code} {err.reason}"
    else:
        cause = err.reason if isinstance(err, urllib.error.URLError) else err
        if isinstance(cause, TimeoutError):
            reason = f"no answer for {timeout:g} s (EMBEDDINGS_DOWNLOAD_TIMEOUT)"
        elif isinstance(cause, http.client.IncompleteRead):
            reason = "the connection closed before the end"
        else:
            reason = getattr(cause, "strerror", None) or _brief(cause)
    return DataSourceError(f"Cannot download {url}: {reason}. Check the URL and the network, "
                           "or use --data PATH.")


def _read_chunk(response: Any, url: str, timeout: float) -> bytes:
    try:
        return cast(bytes, response.read(1 << 20))
    except _NETWORK_ERRORS as err:
        raise _download_error(url, err, timeout) from err


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest``, with a progress bar on a terminal.

    Raises:
        DataSourceError: an HTTP error, no connection, no byte for the timeout, or a body
            shorter than its ``Content-Length``.
    """
    from tqdm.auto import tqdm

    timeout = download_timeout()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as err:
        raise _download_error(url, err, timeout) from err
    expected = getattr(response, "length", None)  # the Content-Length, or None
    received = 0
    name = Path(urllib.parse.urlsplit(url).path).name or url
    with response, dest.open("wb") as out, tqdm(total=expected, unit="B", unit_scale=True,
                                                desc=name, disable=None) as bar:
        while chunk := _read_chunk(response, url, timeout):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if expected is not None and received != expected:
        raise DataSourceError(f"The download from {url} stopped after {received:,} of "
                              f"{expected:,} bytes. Try again.")


def _file_entry(staging: Path, folder: Path, address: str, digest: str) -> None:
    """Move the verified ``staging/archive`` into ``folder`` as ``<digest>.tar.gz``, its
    record first (an archive is never there without its record)."""
    archive = staging / "archive"
    atomic_write_json(staging / "record.json", {
        "source": address, "sha256": digest, "size": archive.stat().st_size,
        "downloaded": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    })
    os.replace(staging / "record.json", folder / f"{digest}.json")
    os.replace(archive, folder / f"{digest}.tar.gz")  # identical bytes if another won the race


def _download(address: str, digest: str | None, folder: Path) -> tuple[list[Review], str]:
    """Download ``address`` into the cache ``folder`` and read it.

    The archive is staged in a claimed ``.download-*`` folder (stale ones, left by killed
    processes, are swept first), checked against ``digest`` and read before it is filed
    as an entry; on any error or interruption the staging folder is removed.

    Raises:
        DataSourceError: the download failed, has another sha256, or is no IMDb tarball.
    """
    sweep(folder, _STAGING)
    staging = claim(folder, _STAGING)
    try:
        _fetch(address, staging.path / "archive")
        blob = _read_regular(staging.path / "archive")
        actual = hashlib.sha256(blob).hexdigest()
        if digest is not None and actual != digest:
            raise DataSourceError(f"The download from {address} has sha256 {actual[:12]}..., "
                                  f"not the expected {digest[:12]}...; nothing was kept.")
        reviews = _tar_reviews(blob, address)
        _file_entry(staging.path, folder, address, actual)
    finally:
        staging.release()
    log.info("Downloaded %s (sha256 %s) into %s", address, actual, folder)
    return reviews, f"{address} (sha256 {actual})"


def read_url(url: str, cache: Path | None = None) -> tuple[list[Review], str]:
    """The reviews of the tarball at ``url``: from the cache, else downloaded once.

    The sha256 expected is the one pinned pip-style in the URL
    (``https://host/x.tar.gz#sha256=<hex>``), or the published one for the Stanford
    URL; the cache entry with that sha256 is used, whatever URL it came from.  Without
    one, the newest entry downloaded from ``url`` is.  Either way it is re-hashed first.

    Args:
        url (str): an ``http(s)://`` URL, optionally ending in ``#sha256=<hex>``.
        cache (Path | None): the cache folder. Default: :func:`cache_dir`.

    Returns:
        tuple[list[Review], str]: the reviews in sorted-walk order, and what was used:
        the URL and sha256 (and the cache entry when one was).

    Raises:
        DataSourceError: a bad pin, a corrupt cache entry (delete it), or a download that
            fails or does not verify (nothing is kept).
    """
    address, digest = _expected_digest(url)
    folder = imdb_cache(cache)
    record = _find_entry(folder, address, digest)
    if record is not None:
        return _read_entry(folder, record)
    return _download(address, digest, folder)


# Choosing the source -------------------------------------------------------------------


def read_source(source: str | os.PathLike[str] | None = None) -> tuple[list[Review], str]:
    """Read the labelled training reviews from ``source``, or find them.

    Args:
        source (str | os.PathLike | None): a directory, a tarball, ``"hub"``, an
            ``http(s)://`` URL (see :func:`read_url`), or ``None`` for
            ``$EMBEDDINGS_DATA`` and then the fallbacks (cache -> hub -> Stanford URL).

    Returns:
        tuple[list[Review], str]: the reviews in sorted-walk order, and a description of
        what they came from (a tarball or a URL with its sha256).

    Raises:
        DataSourceError: the source is unusable, or every fallback failed (the message
        lists what was tried).
    """
    source = source if source is not None else os.environ.get("EMBEDDINGS_DATA") or None
    if source is None:
        return _fallbacks()
    text = str(source)
    if text == "hub":
        return read_hub(), f"hub:{HUB_DATASET}"
    if text.startswith(("http://", "https://")):
        return read_url(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_directory(path), str(path)
    if not path.exists():
        raise DataSourceError(f"The IMDb source {text} does not exist. {_HOW_TO_POINT}")
    return _read_archive(path)


def _fallbacks() -> tuple[list[Review], str]:
    """The first of cache, hub and Stanford URL that works; else one line of what each
    said (its first sentence, the URL shortened to "it")."""
    folder = imdb_cache()
    attempts: list[tuple[str, Callable[[], tuple[list[Review], str]]]] = [
        ("cache", lambda: _cached_imdb(folder)),
        ("hub", lambda: (read_hub(), f"hub:{HUB_DATASET}")),
        ("download", lambda: _download(IMDB_URL, IMDB_SHA256, folder)),
    ]
    failures = []
    for what, attempt in attempts:
        try:
            reviews, where = attempt()
        except DataSourceError as err:
            reason = str(err).replace(IMDB_URL, "it").split(". ")[0]  # its first sentence
            failures.append(f"{what}: {_brief(reason, 70)}")
            continue
        log.info("IMDb reviews from %s", where)
        return reviews, where
    raise DataSourceError("No IMDb source worked (" + "; ".join(failures) + "). "
                          + _HOW_TO_POINT)


# The Keras split and the tf.data order -------------------------------------------------


def split_indices(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keras's training/validation split of ``n`` files in sorted-walk order.

    ``np.random.RandomState(seed).shuffle`` permutes the list, then the last
    ``int(validation_split * n)`` files are the validation subset.

    Returns:
        tuple[np.ndarray, np.ndarray]: the training and validation indices, in that order.

    Raises:
        ValueError: the split leaves one of the subsets empty.
    """
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    num_val = int(validation_split * n)
    if not 0 < num_val < n:
        raise InvalidInput(
            f"validation_split={validation_split} of {n} reviews leaves a subset empty. "
            f"Received: validation_split={validation_split}; use a value such that both subsets "
            "hold at least one review."
        )
    return order[:-num_val], order[-num_val:]


@functools.lru_cache(maxsize=32)
def tfdata_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The order in which the tutorial's tf.data pipeline yields a subset in one pass.

    ``text_dataset_from_directory`` shuffles each subset with ``shuffle(8 * batch_size,
    seed=seed)`` and no global seed, so pass ``k`` draws from the ``k``-th seed pair of
    ``Philox(87654321, seed)`` (``PARITY.md`` section 6.7).  The ring-buffer shuffle is a
    Python loop (about 19 ms for 20,000 rows here), so each order is computed once and
    returned read-only.

    Returns:
        np.ndarray: ``order[i]`` is the position, in the split order, of the i-th row.
    """
    order = shuffle_order(n, 8 * batch_size, DEFAULT_GRAPH_SEED, seed, pass_index)
    order.flags.writeable = False
    return order


def epoch_pass(epoch: int, reshuffle: bool) -> int:
    """Which tf.data pass of the training subset the tutorial's epoch ``epoch`` (0-based) reads.

    With ``.cache()`` (the tutorial) every epoch reads pass 0, the one ``adapt`` filled the
    cache with.  ``--reshuffle`` is the tutorial with ``.cache()`` removed from the training
    dataset: ``adapt`` reads pass 0, and Keras 3's ``fit`` then opens two iterators per
    epoch, trains on the first and drops the second, which it opens when the epoch's last
    batch is read (``EpochIterator._enumerate_iterator``).  Measured with TensorFlow 2.21 and
    Keras 3.15 by recording the batches ``fit`` sees: epochs 1, 2, 3 read passes 1, 3, 5.
    """
    return 2 * epoch + 1 if reshuffle else 0


def pass_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The rows of pass ``pass_index`` as positions in pass 0, the order :func:`load_imdb`
    returns: ``rows[pass_order(...)]`` is what that pass yields."""
    if pass_index == 0:
        return np.arange(n)
    return split_order(n, batch_size, seed)[tfdata_order(n, batch_size, seed, pass_index)]


def split_order(n: int, batch_size: int, seed: int) -> np.ndarray:
    """The rows in the split order (before tf.data's shuffle), as positions in pass 0:
    what ``text_dataset_from_directory`` hands to its ``shuffle``; equally, where each
    split-order row sits in pass 0."""
    return np.argsort(tfdata_order(n, batch_size, seed, 0))


def _to_dataset(reviews: list[Review]) -> datasets.Dataset:
    import datasets

    texts: list[str] = []
    raws: list[bytes | None] = []
    for r in reviews:
        try:
            texts.append(r.raw.decode("utf-8"))
            raws.append(None)
        except UnicodeDecodeError:
            texts.append(r.raw.decode("utf-8", "replace"))
            raws.append(r.raw)
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "path": datasets.Value("string"),
            "raw": datasets.Value("binary"),
        }
    )
    return datasets.Dataset.from_dict(
        {"text": texts, "label": [r.label for r in reviews], "path": [r.path for r in reviews],
         "raw": raws},
        features=features,
    )


def exact_texts(dataset: datasets.Dataset) -> list[str | bytes]:
    """Each row's lossless text: ``raw`` bytes where the file is not valid UTF-8, else ``text``."""
    return [r if r is not None else t
            for t, r in zip(dataset["text"], dataset["raw"], strict=True)]


@dataclass(frozen=True)
class Splits:
    """The tutorial's two subsets of the labelled reviews, each in pass-0 order."""

    train: datasets.Dataset
    val: datasets.Dataset
    source: str  # where the reviews came from


def load_splits(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> Splits:
    """The tutorial's training and validation subsets of the IMDb training reviews.

    Args:
        source (str | os.PathLike | None): see :func:`read_source`. Default: ``None``.
        validation_split (float): fraction held out. Default: ``0.2``.
        seed (int): seed of the split and of the tf.data shuffle. Default: ``123``.
        batch_size (int): the tutorial's batch size; the shuffle buffer is 8 times it.
            Default: ``1024``.

    Returns:
        Splits: ``train`` and ``val``, each in the order of the tutorial's first tf.data
        pass (every epoch's order, because of ``.cache()``), and the source's description.

    Raises:
        DataSourceError: the source is unusable.
        InvalidInput: ``validation_split`` leaves a subset empty.
    """
    if not 0.0 < validation_split < 1.0:
        raise InvalidInput(
            "validation_split must lie strictly between 0 and 1. "
            f"Received: validation_split={validation_split}"
        )
    reviews, where = read_source(source)
    train_idx, val_idx = split_indices(len(reviews), validation_split, seed)
    subsets = []
    for idx in (train_idx, val_idx):
        order = tfdata_order(len(idx), batch_size, seed, 0)
        subsets.append(_to_dataset([reviews[i] for i in idx[order]]))
    log.info("IMDb from %s: %d training and %d validation reviews", where, *map(len, subsets))
    return Splits(subsets[0], subsets[1], where)


def load_imdb(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, val)`` of :func:`load_splits` with the same arguments."""
    splits = load_splits(source, validation_split=validation_split, seed=seed,
                         batch_size=batch_size)
    return splits.train, splits.val
