"""The package's C kernels: compiled on first use, loaded with ``ctypes``, with a clean fallback.

Two libraries are built from C sources shipped in the package: the tensor kernels of
the hot loop and of Adam (``ops/kernels.c``, used by :mod:`embeddings.ops.cpu`) and the
vectorizer's text kernels (``text/kernels.c``, used by :mod:`embeddings.text.native`).
On first use a source is compiled with the system's C compiler (``$CC``, else ``cc``)
into the cache (``$EMBEDDINGS_CACHE/kernels``) and loaded with ``ctypes``: no torch or
Python headers and no build step at install time.  If there is no compiler, the compile
fails, or ``EMBEDDINGS_KERNELS=0`` is set, :meth:`NativeLibrary.available` is false and
the callers use their pure-Python formulation, which computes the same values bit for
bit.  This module imports no torch, so the text engine can use it on its own.

With OpenMP (``-fopenmp``, used when the compiler accepts it) the kernels split their
work over threads in ways that keep every element's float32 operation order; ctypes
releases the GIL while they run.

Compiled kernels are loaded only from a cache the process created, checked against the
hash of their source.  A library's path is predictable (``kernels/<folder>-<key>.so``,
see :func:`cached_library`) and the cache may be shared, so loading whatever lies there
would run another user's code.  A library is loaded only when

* the ``kernels`` folder is a real folder (not a symbolic link) owned by this user and
  not writable by group or others (this module creates it with mode 0700);
* the library is a regular file (not a link) owned by this user and not writable by
  group or others;
* the record written atomically beside it after compiling (``<library>.json``) holds the
  SHA-256 of the current source key (source, flags, compiler, CPU) and of the library's
  bytes as they are read for loading.

The checks, the hash and the load use one open file (through ``/proc/self/fd`` where
there is one), so the file cannot be swapped between them.  A library that fails a check
is never loaded: it is compiled again and atomically replaced.  When the folder itself
fails, the library is compiled into a private temporary folder for this process instead
(removed once loaded) and a warning says why and how to fix the folder.  Platforms
without POSIX file ownership (Windows) use the fallback formulation.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embeddings.files import atomic_write_json, cache_dir

log = logging.getLogger(__name__)

# No fused multiply-add and no fast-math: the kernels must round like the torch path.
# -march=native vectorizes for this CPU; the cache key holds the CPU's flags, so a cache
# shared by different machines never hands one a library built for another.
_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
          "-fno-math-errno", "-std=c99"]

# ctypes argument types, by the letter used in the signature tables of the callers.
CTYPES = {"i": ctypes.c_int64, "f": ctypes.c_float, "p": ctypes.c_void_p, "m": ctypes.c_int}

Signature = tuple[str, str | None]  # argument letters, result letter (None: void)

# Descriptors of the loaded libraries, kept open for the life of the process: the dynamic
# loader knows a library by its name, so a /proc/self/fd/N must never name another file.
_PINNED: list[int] = []


class _Refused(Exception):
    """A cached library that must not be loaded; the message says why."""


class _UntrustedFolder(_Refused):
    """A cache folder that must not be loaded from at all; the message says why."""


def _cpu_flags() -> bytes:
    """The CPU's feature flags (Linux), part of the compiled library's cache key."""
    try:
        for line in Path("/proc/cpuinfo").read_bytes().splitlines():
            if line.startswith((b"flags", b"Features")):
                return line
    except OSError:
        pass
    return platform.processor().encode()


def _source_key(source: Path, compiler: str) -> str:
    """SHA-256 of what the library is built from: source, flags, compiler, machine, CPU."""
    return hashlib.sha256(source.read_bytes() + " ".join(_FLAGS).encode()
                          + platform.machine().encode() + compiler.encode()
                          + _cpu_flags()).hexdigest()


def cached_library(source: Path) -> Path:
    """Where the library compiled from ``source`` is cached (it need not exist).

    Args:
        source (Path): the ``.c`` file.

    Returns:
        Path: ``$EMBEDDINGS_CACHE/kernels/<source folder>-<key>.so``.
    """
    folder, name = _cache_path(source, _source_key(source, os.environ.get("CC") or "cc"))
    return folder / name


def _cache_path(source: Path, key: str) -> tuple[Path, str]:
    """The cache folder and the library's file name in it."""
    return cache_dir() / "kernels", f"{source.parent.name}-{key[:16]}.so"


def _check_owned(st: os.stat_result, what: str, error: type[_Refused]) -> None:
    """Raise ``error`` unless ``st`` belongs to this user and only this user can write it."""
    if st.st_uid != os.getuid():
        raise error(f"{what} belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise error(f"{what} is writable by group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):o})")


def _open_folder(folder: Path) -> int:
    """A descriptor of ``folder``, opened once it is checked to be ours alone.

    Raises:
        _UntrustedFolder: a symbolic link, not a folder, another owner, or writable by
            group or others.
    """
    try:
        if folder.is_symlink():
            raise _UntrustedFolder(f"{folder} is a symbolic link")
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:  # also a link put there after the first look
        raise _UntrustedFolder(f"{folder} cannot be opened as a folder ({err})") from err
    try:
        _check_owned(os.fstat(fd), str(folder), _UntrustedFolder)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_checked(name: str, folder_fd: int) -> tuple[int, bytes]:
    """Open ``name`` in the folder (never through a link) and read it, once checked.

    Returns:
        tuple[int, bytes]: the open descriptor and the file's bytes.

    Raises:
        _Refused: missing, a link, not a regular file, or not ours alone.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except FileNotFoundError as err:
        raise _Refused(f"{name} is missing") from err
    except OSError as err:  # ELOOP: a symbolic link
        raise _Refused(f"{name} cannot be opened as a plain file ({err})") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Refused(f"{name} is not a regular file")
        _check_owned(st, name, _Refused)
        with open(fd, "rb", closefd=False) as f:
            return fd, f.read()
    except BaseException:
        os.close(fd)
        raise


def _load(folder: Path, name: str, key: str) -> ctypes.CDLL:
    """Load ``folder/name`` once the folder, the file and its record pass every check.

    Raises:
        _UntrustedFolder: the folder cannot be trusted.
        _Refused: the library is missing or fails a check.
    """
    folder_fd = _open_folder(folder)
    try:
        fd, library = _read_checked(name, folder_fd)
        try:
            record_fd, record = _read_checked(name + ".json", folder_fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(record_fd)
    finally:
        os.close(folder_fd)
    try:
        try:
            expected = json.loads(record)
            matches = (expected["source_sha256"] == key
                       and expected["library_sha256"] == hashlib.sha256(library).hexdigest())
        except (ValueError, TypeError, KeyError) as err:
            raise _Refused(f"the record of {name} is malformed ({err!r})") from err
        if not matches:
            raise _Refused(f"{name} does not match its record: the source or the library "
                           "changed since it was compiled")
        proc = f"/proc/self/fd/{fd}"
        lib = _open(proc if os.path.exists(proc) else str(folder / name))
    except BaseException:
        os.close(fd)
        raise
    _PINNED.append(fd)
    return lib


def _build(compiler: str, source: Path, folder: Path, name: str, key: str) -> None:
    """Compile ``source`` into ``folder/name`` atomically, then write its record beside it."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".so")
    os.close(fd)
    try:
        try:
            subprocess.run([compiler, *_FLAGS, "-fopenmp", "-o", tmp, str(source), "-lm"],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP: the pragmas are ignored
            subprocess.run([compiler, *_FLAGS, "-o", tmp, str(source), "-lm"], check=True,
                           capture_output=True, timeout=120)
        os.chmod(tmp, 0o700)  # the linker's mode follows the umask
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    record = folder / (name + ".json")
    atomic_write_json(record, {"source_sha256": key, "library_sha256": digest})
    os.chmod(record, 0o600)


def _make_folder(folder: Path) -> None:
    """Create the cache's ``folder`` with mode 0700 when it is missing."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # the umask may have taken bits away
    except FileExistsError:
        pass  # checked before every load
    except OSError as err:
        raise _UntrustedFolder(f"{folder} cannot be created ({err})") from err


def _library(source: Path) -> ctypes.CDLL:
    """Load the library of ``source`` from the cache, compiling it when it is missing or
    fails a check, or from a private folder when the cache folder fails one.

    Raises:
        OSError: no compiler, or the library cannot be loaded.
        subprocess.SubprocessError: the compile failed.
        _Refused: a freshly built private library fails a check (a bug).
    """
    if not hasattr(os, "getuid"):
        raise OSError("the kernel cache's ownership cannot be checked on this platform")
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    key = _source_key(source, compiler)
    folder, name = _cache_path(source, key)
    try:
        _make_folder(folder)
        try:
            return _load(folder, name, key)
        except _UntrustedFolder:
            raise
        except _Refused as why:
            if os.path.lexists(folder / name):
                log.warning("not loading %s: %s; compiling it again", folder / name, why)
            else:
                log.info("compiling %s into %s", source, folder / name)
        _build(compiler, source, folder, name, key)
        return _load(folder, name, key)
    except _Refused as why:  # also one whose fresh build changed under us
        log.warning("not using the kernel cache %s (%s); compiling %s into a private folder "
                    "for this process. Fix: remove the folder, or make it yours alone "
                    "(chmod 700), or point EMBEDDINGS_CACHE elsewhere", folder, why, source.name)
    private = Path(tempfile.mkdtemp(prefix="embeddings-kernels-"))
    try:
        _build(compiler, source, private, name, key)
        return _load(private, name, key)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _open(path: str) -> ctypes.CDLL:
    """Load a library with OpenMP's threads set to sleep, not spin, while they wait.

    Spinning threads are fast on an idle machine but ruinous when the cores are shared
    (measured: 80 ms instead of 1.2 ms per training step with one other busy process on 2
    cores). The OpenMP runtime reads OMP_WAIT_POLICY once, when it is loaded with this
    library; the caller's own setting wins, and the environment is restored afterwards.
    """
    previous = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = previous or "PASSIVE"
    try:
        return ctypes.CDLL(path)
    finally:
        if previous is None:
            del os.environ["OMP_WAIT_POLICY"]


class NativeLibrary:
    """One C source of the package, compiled and loaded on first use.

    Args:
        source (Path): the ``.c`` file.
        signatures (Mapping[str, Signature]): each exported function's argument letters and
            result letter (see :data:`CTYPES`; ``None`` for ``void``).
    """

    def __init__(self, source: Path, signatures: Mapping[str, Signature]) -> None:
        self.source = source
        self.signatures = dict(signatures)
        self._lib: ctypes.CDLL | None = None
        self._tried = False

    def get(self) -> ctypes.CDLL | None:
        """The loaded library (compiling it on the first call), or ``None`` without one."""
        if self._tried:
            return self._lib
        self._tried = True
        if os.environ.get("EMBEDDINGS_KERNELS", "1") == "0":
            return None
        try:
            lib = _library(self.source)
        except (OSError, subprocess.SubprocessError, _Refused) as err:
            log.info("compiled kernels of %s unavailable (%s); using the fallback formulation",
                     self.source.name, err)
            return None
        for name, (args, result) in self.signatures.items():
            fn = getattr(lib, name)
            fn.argtypes = [CTYPES[a] for a in args]
            fn.restype = CTYPES[result] if result else None
        self._lib = lib
        return lib

    def available(self) -> bool:
        """Whether the compiled kernels can be used (compiling them on the first call)."""
        return self.get() is not None

    def call(self, name: str, *args: Any) -> Any:
        """Call ``name`` of the loaded library.

        Raises:
            RuntimeError: the library is not available (callers check :meth:`available`).
        """
        lib = self.get()
        if lib is None:
            raise RuntimeError(f"the compiled kernels of {self.source.name} are not available")
        return getattr(lib, name)(*args)

