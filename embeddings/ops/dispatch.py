"""One dispatch table for the kernels: which implementation runs a call.

Three modules implement the same functions (``bag_mean``, ``bag_scatter``,
``touched_rows``, ``adam_update``, ``adam_rows``, ``accepts``) and compute the same values:

* ``cpu``: :mod:`embeddings.ops.cpu`, C kernels for contiguous float32 CPU tensors,
  when a C compiler built them;
* ``cuda``: :mod:`embeddings.ops.cuda`, Triton kernels for CUDA tensors, when Triton
  imports (PyTorch's CUDA wheels for Linux bring it);
* ``reference``: :mod:`embeddings.ops.reference`, pure torch, for everything else.

:func:`kernels_for` picks one per call from the tensors; :func:`use` pins one for a
block of code (the tests and benchmarks run each implementation this way; the
``cuda`` kernels then run on CPU tensors under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from types import ModuleType

import torch

from embeddings.ops import cpu, reference

IMPLEMENTATIONS = ("cpu", "cuda", "reference")
_pinned: str | None = None


@functools.cache
def _cuda() -> ModuleType | None:
    try:
        from embeddings.ops import cuda
    except ImportError:  # no Triton: the reference runs on CUDA too
        return None
    return cuda


def cuda_kernels() -> ModuleType | None:
    """:mod:`embeddings.ops.cuda` when Triton imports, else ``None``."""
    return _cuda()


def kernels_for(*tensors: torch.Tensor | None) -> ModuleType:
    """The implementation that runs a call on ``tensors``.

    CUDA tensors go to Triton when it imports, CPU tensors to the C kernels when they
    accept them; everything else, and what a pinned implementation cannot take (the C
    kernels take only float32), goes to the reference.
    """
    if _pinned == "reference":
        return reference
    if _pinned == "cuda":
        pinned = _cuda()
        if pinned is None:
            raise RuntimeError("ops.use('cuda') needs Triton: pip install triton")
        return pinned
    if _pinned is None and any(t is not None and t.device.type == "cuda" for t in tensors):
        return _cuda() or reference
    return cpu if cpu.accepts(*tensors) else reference


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run every kernel call inside the block on one implementation.

    Args:
        name (str): ``"cpu"``, ``"cuda"`` or ``"reference"``.

    Raises:
        ValueError: an unknown name.
    """
    global _pinned
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"name must be one of {IMPLEMENTATIONS}. Received: name={name!r}")
    previous, _pinned = _pinned, name
    try:
        yield
    finally:
        _pinned = previous
