"""The optional compiled CPU path of the hot loop (``kernels.c``), with a clean fallback.

On first use the C file is compiled with the system's C compiler (``$CC``, else
``cc``) into the cache (``$EMBEDDINGS_CACHE/kernels``) and loaded with
``ctypes``; no torch headers and no build step at install time are needed.  If
there is no compiler, the compile fails, or ``EMBEDDINGS_KERNELS=0`` is set,
:func:`available` is false and :mod:`embeddings.ops` and :mod:`embeddings.optim`
use their pure-torch formulation, which computes the same values bit for bit.

ctypes releases the GIL during a call, so work is split over a small thread
pool: bags for the forward, the gradient sum and the squared sum (and their
columns) for the backward, element ranges for Adam.  Each split keeps every
element's float32 operation order.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from embeddings.files import cache_dir

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("kernels.c")
# No fused multiply-add and no fast-math: the kernels must round like the torch path.
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-std=c99"]
_THREADS = max(1, min(8, os.cpu_count() or 1))
_MIN_PARALLEL = 1 << 15  # elements below which one thread is faster than dispatching

_lib: ctypes.CDLL | None = None
_tried = False
_pool: ThreadPoolExecutor | None = None

_i64, _f32, _ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


def _compile() -> Path:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(_FLAGS).encode() + platform.machine().encode()
                         + compiler.encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"kernels-{key}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        subprocess.run([compiler, *_FLAGS, "-o", tmp, str(_SOURCE), "-lm"], check=True,
                       capture_output=True, timeout=120)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("EMBEDDINGS_KERNELS", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(_compile()))
    except (OSError, subprocess.SubprocessError) as err:
        log.info("compiled CPU kernels unavailable (%s); using the torch formulation", err)
        return None
    lib.bag_mean_forward.argtypes = [_ptr, _ptr, _ptr, _i64, _i64, _i64, _i64]
    lib.bag_scatter_add.argtypes = [_ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _i64]
    lib.adam_update.argtypes = [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _f32, _f32, _f32,
                                _f32]
    for fn in (lib.bag_mean_forward, lib.bag_scatter_add, lib.adam_update):
        fn.restype = None
    _lib = lib
    return lib


def available() -> bool:
    """Whether the compiled kernels can be used (compiling them on first call)."""
    return _load() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """The compiled path takes contiguous CPU tensors (float32 values, int64 ids)."""
    return all(t.device.type == "cpu" and t.is_contiguous() and
               t.dtype in (torch.float32, torch.int64) for t in tensors) and available()


def _run(tasks: Sequence[tuple[Any, ...]], fn: Any, parallel: bool) -> None:
    global _pool
    if not parallel or len(tasks) == 1:
        for args in tasks:
            fn(*args)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="embeddings-kernels")
    for future in [_pool.submit(fn, *args) for args in tasks]:
        future.result()


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def bag_mean_forward(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, D)`` means in TensorFlow's lane order (see ``kernels.c``)."""
    lib = _load()
    assert lib is not None
    batch, length = ids.shape
    dim = weight.shape[1]
    out = torch.empty(batch, dim, dtype=weight.dtype)
    parallel = batch * length * dim >= _MIN_PARALLEL
    parts = min(_THREADS, batch) if parallel else 1
    _run([(weight.data_ptr(), ids.data_ptr(), out.data_ptr(), b0, b1, length, dim)
          for b0, b1 in _ranges(batch, parts)], lib.bag_mean_forward, parallel)
    return out


def bag_scatter_add(sources: list[torch.Tensor], ids: torch.Tensor, rows: int
                    ) -> list[torch.Tensor]:
    """For each ``(B, D)`` source: a ``(rows, D)`` sum of its row ``b`` at every id of bag ``b``,
    accumulated in occurrence order."""
    lib = _load()
    assert lib is not None
    batch, length = ids.shape
    outs = [torch.zeros(rows, s.shape[1], dtype=s.dtype) for s in sources]
    dim = sources[0].shape[1]
    parallel = batch * length * dim >= _MIN_PARALLEL
    splits = min(dim, max(1, _THREADS // len(sources))) if parallel else 1
    tasks = [(src.data_ptr(), ids.data_ptr(), out.data_ptr(), batch, length, dim, c0, c1)
             for src, out in zip(sources, outs, strict=True)
             for c0, c1 in _ranges(dim, splits)]
    _run(tasks, lib.bag_scatter_add, parallel)
    return outs


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, alpha: float, c1: float, c2: float,
                epsilon: float) -> None:
    """In-place Keras/TensorFlow Adam update of one parameter (see ``kernels.c``)."""
    lib = _load()
    assert lib is not None
    n = param.numel()
    sq = grad_sq.data_ptr() if grad_sq is not None else None
    parallel = n >= _MIN_PARALLEL
    _run([(param.data_ptr(), grad.data_ptr(), sq, m.data_ptr(), v.data_ptr(), i0, i1, alpha, c1,
           c2, epsilon) for i0, i1 in _ranges(n, _THREADS if parallel else 1)],
         lib.adam_update, parallel)
