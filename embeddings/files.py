"""Atomic file writes and claimed staging folders: every file and folder the program
writes appears whole or not at all, and debris from a killed process is recognised.

Each writer fills a temporary file in the target's folder, flushes it to disk,
then renames it over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # Windows: staging folders are not locked, stale ones not swept
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where downloads and compiled kernels are kept: ``$EMBEDDINGS_CACHE``, or
    ``~/.cache/embeddings``."""
    return Path(os.environ.get("EMBEDDINGS_CACHE") or Path.home() / ".cache" / "embeddings")


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, a piece at a time: it appears whole when
    the block ends (flushed, synced, renamed over ``path``), or not at all when the block
    raises.  Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating missing parent folders."""
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 with ``\\n`` line ends (on every OS); lone surrogates
    from ``surrogateescape`` decoding are written back as their original bytes."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON (ASCII-escaped, so any token round-trips)."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


# Staging folders -----------------------------------------------------------------------
#
# Work that produces a folder (a run directory, a download) fills a hidden staging
# folder beside its target and renames it into place at the end.  Each staging folder is
# *claimed*: its creator holds an exclusive ``flock`` on it for as long as it lives.  The
# kernel drops the lock when the process ends, however it ends (SIGKILL included), so a
# staging folder whose lock can be taken belongs to a process that is gone: the next run
# in that folder removes it (:func:`sweep`).  A folder whose lock is held belongs to a live
# process, which lets a second run aimed at the same target see the first one.  Names
# sort by creation time: ``<prefix><time_ns>-<pid>-<random>``.


@dataclass(frozen=True)
class Claim:
    """A staging folder held by this process."""

    path: Path
    fd: int  # the open folder, locked while the claim lives

    def release(self) -> None:
        """Remove the folder (if it is still there) and drop the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self.fd)


def try_lock(path: Path) -> int | None:
    """An fd of folder ``path`` holding its exclusive lock, or ``None`` when another
    process holds it (or the folder is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                     | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def claim(parent: Path, prefix: str) -> Claim:
    """Create and lock a new staging folder ``parent/<prefix>...`` (mode as ``mkdir``).

    Raises:
        OSError: ``parent`` cannot be created or written.
    """
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(tempfile.mkdtemp(dir=parent,
                                     prefix=f"{prefix}{time.time_ns():020d}-{os.getpid()}-"))
        fd = try_lock(path)
        if fd is None:
            continue
        # A concurrent sweep may have taken the fresh folder for a stale one: then it is
        # gone (or going), and a new one is made.
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.chmod(path, 0o777 & ~umask())  # mkdtemp makes 0700; give the usual mode
            return Claim(path, fd)
        os.close(fd)


def sweep(parent: Path, prefix: str) -> list[Path]:
    """Remove the staging folders ``parent/<prefix>*`` left by processes that are gone.

    Returns:
        list[Path]: the staging folders still held by live processes, oldest first.
    """
    live: list[Path] = []
    if fcntl is None or not parent.is_dir():
        return live
    for entry in sorted(parent.iterdir()):
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        fd = try_lock(entry)
        if fd is None:
            live.append(entry)
            continue
        try:
            log.info("removing %s, left unfinished by a process that was killed", entry)
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(fd)
    return live


def holder_pid(staging: Path) -> int | None:
    """The process id recorded in a staging folder's name (see :func:`claim`)."""
    parts = staging.name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
