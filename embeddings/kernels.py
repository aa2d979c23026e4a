"""The optional compiled CPU path (``kernels.c``) of the hot loop, Adam and text
standardization, with a clean fallback.

On first use the C file is compiled with the system's C compiler (``$CC``, else
``cc``) into the cache (``$EMBEDDINGS_CACHE/kernels``) and loaded with
``ctypes``; no torch headers and no build step at install time are needed.  If
there is no compiler, the compile fails, or ``EMBEDDINGS_KERNELS=0`` is set,
:func:`available` is false and :mod:`embeddings.ops` and :mod:`embeddings.optim`
use their pure-torch formulation, which computes the same values bit for bit.

With OpenMP (``-fopenmp``, used when the compiler accepts it) the kernels
split their work over threads in ways that keep every element's float32
operation order; ctypes releases the GIL while they run.
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
from pathlib import Path

import numpy as np
import torch

from embeddings.files import cache_dir

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("kernels.c")
# No fused multiply-add and no fast-math: the kernels must round like the torch path.
# -march=native vectorizes for this CPU; the cache key holds the CPU's flags, so a cache
# shared by different machines never hands one a library built for another.
_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
          "-fno-math-errno",
          "-std=c99"]

# Table size (V * D elements) from which the backward groups occurrences by row instead of
# scattering them: once the tables outgrow the caches, writing each row once wins (measured
# here: 8.3 vs 8.8 ms at 100k x 64, 122 vs 163 ms at 1M x 128; 1.4 vs 0.35 ms at 10k x 16).
GROUPED_MIN_ELEMENTS = 1 << 22

_lib: ctypes.CDLL | None = None
_tried = False

_i64, _f32, _ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


def _cpu_flags() -> bytes:
    """The CPU's feature flags (Linux), part of the compiled library's cache key."""
    try:
        for line in Path("/proc/cpuinfo").read_bytes().splitlines():
            if line.startswith((b"flags", b"Features")):
                return line
    except OSError:
        pass
    return platform.processor().encode()


def _compile() -> Path:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(_FLAGS).encode() + platform.machine().encode()
                         + compiler.encode() + _cpu_flags()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"kernels-{key}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        try:
            subprocess.run([compiler, *_FLAGS, "-fopenmp", "-o", tmp, str(_SOURCE), "-lm"],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP: the pragmas are ignored
            subprocess.run([compiler, *_FLAGS, "-o", tmp, str(_SOURCE), "-lm"], check=True,
                           capture_output=True, timeout=120)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _open(path: Path) -> ctypes.CDLL:
    """Load the library with OpenMP's threads set to sleep, not spin, while they wait.

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


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("EMBEDDINGS_KERNELS", "1") == "0":
        return None
    try:
        lib = _open(_compile())
    except (OSError, subprocess.SubprocessError) as err:
        log.info("compiled CPU kernels unavailable (%s); using the torch formulation", err)
        return None
    lib.bag_mean_forward.argtypes = [_ptr, _ptr, _ptr, _i64, _i64, _i64, _i64]
    lib.bag_mean_forward.restype = _i64
    lib.bag_scatter_sums.argtypes = [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64]
    lib.ragged_mean_forward.argtypes = [_ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64]
    lib.ragged_mean_forward.restype = _i64
    lib.adam_update.argtypes = [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _f32, _f32, _f32, _f32]
    lib.standardize.argtypes = [_ptr, _ptr, _i64, _ptr, _ptr, ctypes.c_int]
    for fn in (lib.bag_scatter_sums, lib.adam_update, lib.standardize):
        fn.restype = None
    lib.count_tokens.argtypes = [_ptr, _ptr, _i64, _ptr, _ptr, _ptr, _i64]
    lib.count_tokens.restype = _i64
    lib.scatter_rows_sums.argtypes = [_ptr, _ptr, _ptr, _ptr, _i64, _i64]
    lib.scatter_rows_sums.restype = None
    lib.grouped_scatter_sums.argtypes = [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64]
    lib.grouped_scatter_sums.restype = _i64
    lib.build_vocab_table.argtypes = [_ptr, _ptr, _ptr, _i64, _ptr, _i64]
    lib.build_vocab_table.restype = None
    lib.encode.argtypes = [_ptr, _ptr, _i64, ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _i64, _ptr,
                           _i64, _ptr]
    lib.encode.restype = None
    _lib = lib
    return lib


def available() -> bool:
    """Whether the compiled kernels can be used (compiling them on first call)."""
    return _load() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """The compiled path takes contiguous CPU tensors (float32 values, int64 ids)."""
    return all(t.device.type == "cpu" and t.is_contiguous() and
               t.dtype in (torch.float32, torch.int64) for t in tensors) and available()


def check_ids(ids: torch.Tensor, rows: int) -> None:
    """Raise the error for CPU ids outside a ``rows``-row table, if any are (ids on a GPU
    are not checked: reading the answer would wait for the GPU).

    Raises:
        IndexError: an id below 0 or at least ``rows``.
    """
    if ids.numel() == 0 or ids.device.type != "cpu":
        return
    low, high = torch.aminmax(ids)
    if low < 0 or high >= rows:
        raise IndexError(f"ids must lie in [0, {rows}) for a table of {rows} rows. "
                         f"Received: ids from {int(low)} to {int(high)}")


def bag_mean_forward(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, D)`` means in TensorFlow's lane order (see ``kernels.c``).

    Raises:
        IndexError: an id outside the table (found while reading, at no extra pass).
    """
    lib = _load()
    assert lib is not None
    batch, length = ids.shape
    out = torch.empty(batch, weight.shape[1], dtype=weight.dtype)
    if lib.bag_mean_forward(weight.data_ptr(), ids.data_ptr(), out.data_ptr(), batch, length,
                            weight.shape[1], weight.shape[0]):
        check_ids(ids, weight.shape[0])
    return out


def ragged_mean_forward(weight: torch.Tensor, ids: torch.Tensor,
                        offsets: torch.Tensor) -> torch.Tensor:
    """``(N,)`` ids cut at ``(B,)`` ``offsets`` -> ``(B, D)`` means, each bag summed in id
    order and divided by its length (an empty bag gives zeros).

    Raises:
        IndexError: an id outside the table.
    """
    lib = _load()
    assert lib is not None
    out = torch.empty(len(offsets), weight.shape[1], dtype=weight.dtype)
    if lib.ragged_mean_forward(weight.data_ptr(), ids.data_ptr(), offsets.data_ptr(),
                               out.data_ptr(), len(offsets), ids.numel(), weight.shape[1],
                               weight.shape[0]):
        check_ids(ids, weight.shape[0])
    return out


def grouped_scatter_sums(src: torch.Tensor, squared: torch.Tensor | None, ids: torch.Tensor,
                         per: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, D)`` sums of ``src[i // per]`` over the occurrences ``i`` of each id, and of
    ``squared[i // per]`` (``src`` squared when ``None``), grouped by row (see ``kernels.c``).

    Raises:
        MemoryError: no room for the sort's ``(rows + N)`` int64 working memory.
    """
    lib = _load()
    assert lib is not None
    dim = src.shape[1]
    sums = torch.empty(rows, dim, dtype=src.dtype)
    squares = torch.empty(rows, dim, dtype=src.dtype)
    status = lib.grouped_scatter_sums(src.data_ptr(),
                                      squared.data_ptr() if squared is not None else None,
                                      ids.data_ptr(), sums.data_ptr(), squares.data_ptr(),
                                      ids.numel(), per, rows, dim)
    if status != 0:
        raise MemoryError(f"no memory to sort {ids.numel()} ids over {rows} rows")
    return sums, squares


def bag_scatter_sums(per_occurrence: torch.Tensor, squared: torch.Tensor, ids: torch.Tensor,
                     rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bag mean's backward: ``(rows, D)`` sums of ``per_occurrence[b]`` and of
    ``squared[b]`` at every id of bag ``b``, accumulated in occurrence order."""
    lib = _load()
    assert lib is not None
    batch, length = ids.shape
    dim = per_occurrence.shape[1]
    if rows * dim >= GROUPED_MIN_ELEMENTS:
        return grouped_scatter_sums(per_occurrence, squared, ids, length, rows)
    sums = torch.zeros(rows, dim, dtype=per_occurrence.dtype)
    squares = torch.zeros(rows, dim, dtype=per_occurrence.dtype)
    lib.bag_scatter_sums(per_occurrence.data_ptr(), squared.data_ptr(), ids.data_ptr(),
                         sums.data_ptr(), squares.data_ptr(), batch, length, dim)
    return sums, squares


def scatter_rows_sums(rows: torch.Tensor, ids: torch.Tensor, count: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain gather's backward: ``(count, D)`` sums of the ``(N, D)`` occurrence rows at
    their ids, and of their squares, in occurrence order."""
    lib = _load()
    assert lib is not None
    if count * rows.shape[1] >= GROUPED_MIN_ELEMENTS:
        return grouped_scatter_sums(rows, None, ids, 1, count)
    sums = torch.zeros(count, rows.shape[1], dtype=rows.dtype)
    squares = torch.zeros(count, rows.shape[1], dtype=rows.dtype)
    lib.scatter_rows_sums(rows.data_ptr(), ids.data_ptr(), sums.data_ptr(), squares.data_ptr(),
                          rows.shape[0], rows.shape[1])
    return sums, squares


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, alpha: float, c1: float, c2: float,
                epsilon: float) -> None:
    """In-place Keras/TensorFlow Adam update of one parameter (see ``kernels.c``)."""
    lib = _load()
    assert lib is not None
    lib.adam_update(param.data_ptr(), grad.data_ptr(),
                    grad_sq.data_ptr() if grad_sq is not None else None, m.data_ptr(),
                    v.data_ptr(), param.numel(), alpha, c1, c2, epsilon)


# Bits of the ``standardize`` kernel's mode, per built-in standardization.
STANDARDIZE_BITS = {"none": 0, "lower": 1, "strip_punctuation": 4, "lower_and_strip_punctuation": 5,
                    "tutorial": 7}


def standardize(texts: list[bytes], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in standardization of every text at once, as one byte buffer.

    Returns:
        tuple[np.ndarray, np.ndarray]: the uint8 data and the ``(n + 1,)`` int64 offsets of
        the standardized texts (Arrow's string layout).
    """
    lib = _load()
    assert lib is not None
    data, offsets = _pack(texts)
    out = np.empty(len(data), dtype=np.uint8)
    out_offsets = np.empty_like(offsets)
    lib.standardize(data.ctypes.data, offsets.ctypes.data, len(texts), out.ctypes.data,
                    out_offsets.ctypes.data, STANDARDIZE_BITS[mode])
    return out[: out_offsets[-1]], out_offsets


def count_tokens(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Count the whitespace-separated tokens of packed texts (``bytes.split()`` rules).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: start, length and count of each
        distinct token (starts index ``data``), in no particular order.
    """
    lib = _load()
    assert lib is not None
    n = len(offsets) - 1
    capacity = 1 << 18
    while True:
        start = np.full(capacity, -1, dtype=np.int64)
        length = np.zeros(capacity, dtype=np.int64)
        count = np.zeros(capacity, dtype=np.int64)
        found = lib.count_tokens(data.ctypes.data, offsets.ctypes.data, n, start.ctypes.data,
                                 length.ctypes.data, count.ctypes.data, capacity)
        if found >= 0:
            used = start >= 0
            return start[used], length[used], count[used]
        capacity *= 4


def _pack(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one uint8 buffer and ``(n + 1,)`` int64 offsets (Arrow's string layout)."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=offsets[1:])
    data = np.frombuffer(b"".join(texts) or b"\0", dtype=np.uint8)
    return data, offsets


class VocabularyTable:
    """A vocabulary's token -> id hash table for :func:`encode` (ids are list positions)."""

    def __init__(self, tokens: list[bytes]) -> None:
        lib = _load()
        assert lib is not None
        self.blob, offsets = _pack(tokens)
        self.starts = np.ascontiguousarray(offsets[:-1])
        self.lengths = np.diff(offsets)
        self.capacity = 1 << max(4, (2 * len(tokens)).bit_length())
        self.slots = np.full(self.capacity, -1, dtype=np.int64)
        lib.build_vocab_table(self.blob.ctypes.data, self.starts.ctypes.data,
                              self.lengths.ctypes.data, len(tokens), self.slots.ctypes.data,
                              self.capacity)


def encode(texts: list[bytes], mode: str, table: VocabularyTable, length: int) -> np.ndarray:
    """Standardize, split and look up ``texts``: ``(n, length)`` int64 ids, 0-padded on the
    right, 1 for unknown tokens; only each text's first ``length`` tokens are read."""
    lib = _load()
    assert lib is not None
    data, offsets = _pack(texts)
    out = np.zeros((len(texts), length), dtype=np.int64)
    scratch = np.empty(max(1, int(np.diff(offsets).max(initial=0))), dtype=np.uint8)
    lib.encode(data.ctypes.data, offsets.ctypes.data, len(texts), STANDARDIZE_BITS[mode],
               table.blob.ctypes.data, table.starts.ctypes.data, table.lengths.ctypes.data,
               table.slots.ctypes.data, table.capacity, out.ctypes.data, length,
               scratch.ctypes.data)
    return out
