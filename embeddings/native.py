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
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embeddings.files import cache_dir

log = logging.getLogger(__name__)

# No fused multiply-add and no fast-math: the kernels must round like the torch path.
# -march=native vectorizes for this CPU; the cache key holds the CPU's flags, so a cache
# shared by different machines never hands one a library built for another.
_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
          "-fno-math-errno", "-std=c99"]

# ctypes argument types, by the letter used in the signature tables of the callers.
CTYPES = {"i": ctypes.c_int64, "f": ctypes.c_float, "p": ctypes.c_void_p, "m": ctypes.c_int}

Signature = tuple[str, str | None]  # argument letters, result letter (None: void)


def _cpu_flags() -> bytes:
    """The CPU's feature flags (Linux), part of the compiled library's cache key."""
    try:
        for line in Path("/proc/cpuinfo").read_bytes().splitlines():
            if line.startswith((b"flags", b"Features")):
                return line
    except OSError:
        pass
    return platform.processor().encode()


def _compile(source: Path) -> Path:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    code = source.read_bytes()
    key = hashlib.sha256(code + " ".join(_FLAGS).encode() + platform.machine().encode()
                         + compiler.encode() + _cpu_flags()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"{source.parent.name}-{key}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        try:
            subprocess.run([compiler, *_FLAGS, "-fopenmp", "-o", tmp, str(source), "-lm"],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP: the pragmas are ignored
            subprocess.run([compiler, *_FLAGS, "-o", tmp, str(source), "-lm"], check=True,
                           capture_output=True, timeout=120)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _open(path: Path) -> ctypes.CDLL:
    """Load a library with OpenMP's threads set to sleep, not spin, while they wait.

    Spinning threads are fast on an idle machine but ruinous when the cores are shared
    (measured: 80 ms instead of 1.2 ms per training step with one other busy process on 2
    cores). The OpenMP runtime reads OMP_WAIT_POLICY once, when it is loaded with this
    library; the caller's own setting wins, and the environment is restored afterwards.
    """
    previous = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = previous or "PASSIVE"
    try:
        return ctypes.CDLL(str(path))
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
            lib = _open(_compile(self.source))
        except (OSError, subprocess.SubprocessError) as err:
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

