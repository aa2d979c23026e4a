"""Downloads of the reviews' tarball, kept whole in a verified, content-addressed cache.

An archive is kept as ``$EMBEDDINGS_CACHE/imdb/<sha256>.tar.gz`` beside ``<sha256>.json``
(source URL, sha256, size, date), staged in a claimed ``.download-*`` folder and renamed
into place, and re-hashed on every use.  The Stanford URL and the default source use only
the entry with the archive's published sha256; another URL may pin one pip-style,
``https://host/x.tar.gz#sha256=<hex>``, or else reuses the entry whose record names it
(re-verified against its recorded sha256).  The extracted ``aclImdb`` folder that older
versions cached is no longer trusted, and ignored.

:data:`IMDB_URL` and :data:`IMDB_SHA256` are read from this module at call time (also by
:mod:`embeddings.data.sources`): a test that points the default source elsewhere patches
them here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import http.client
import json
import logging
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, cast

from embeddings.data.reviews import DataSourceError, Review, _brief, _read_regular
from embeddings.data.tarball import archive_reviews
from embeddings.errors import InvalidInput
from embeddings.files import atomic_write_json, cache_dir, claim, sweep

log = logging.getLogger(__name__)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte; $EMBEDDINGS_DOWNLOAD_TIMEOUT overrides it
_STAGING = ".download-"  # prefix of the claimed folders downloads are staged in
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # IncompleteRead is no OSError


# The cache -----------------------------------------------------------------------------


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


def _read_entry(folder: Path, record: dict[str, Any],
                subset: str = "train") -> tuple[list[Review], str]:
    """The reviews of ``subset`` in a cache entry, after re-hashing it, and its description.

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
    return archive_reviews(blob, str(archive), subset, digest), where


def _cached_imdb(folder: Path, subset: str = "train") -> tuple[list[Review], str]:
    """``subset`` of the cache entry of the Stanford archive (by its published sha256)."""
    record = _find_entry(folder, IMDB_URL, IMDB_SHA256)
    if record is None:
        raise DataSourceError("not downloaded yet")
    return _read_entry(folder, record, subset)


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


def _download(address: str, digest: str | None, folder: Path,
              subset: str = "train") -> tuple[list[Review], str]:
    """Download ``address`` into the cache ``folder`` and read its ``subset``.

    The archive is staged in a claimed ``.download-*`` folder (stale ones, left by killed
    processes, are swept first), checked against ``digest`` and read before it is filed
    as an entry; on any error or interruption the staging folder is removed.

    Raises:
        DataSourceError: the download failed, has another sha256, or is no IMDb tarball
            (or has no ``subset`` in it).
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
        reviews = archive_reviews(blob, address, subset, actual)
        _file_entry(staging.path, folder, address, actual)
    finally:
        staging.release()
    log.info("Downloaded %s (sha256 %s) into %s", address, actual, folder)
    return reviews, f"{address} (sha256 {actual})"


def read_url(url: str, cache: Path | None = None,
             subset: str = "train") -> tuple[list[Review], str]:
    """The reviews of ``subset`` in the tarball at ``url``: from the cache, else downloaded
    once.

    The sha256 expected is the one pinned pip-style in the URL
    (``https://host/x.tar.gz#sha256=<hex>``), or the published one for the Stanford
    URL; the cache entry with that sha256 is used, whatever URL it came from.  Without
    one, the newest entry downloaded from ``url`` is.  Either way it is re-hashed first.

    Args:
        url (str): an ``http(s)://`` URL, optionally ending in ``#sha256=<hex>``.
        cache (Path | None): the cache folder. Default: :func:`cache_dir`.
        subset (str): ``"train"`` or ``"test"``. Default: ``"train"``.

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
        return _read_entry(folder, record, subset)
    return _download(address, digest, folder, subset)
