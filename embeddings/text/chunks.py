"""A batch of texts cut into consecutive chunks, one per thread.

Arrow's kernels and the compiled text kernels release the GIL, so chunks of one batch run
in parallel.  A chunk below a few hundred texts (compiled) or a few thousand (Arrow) costs
more in thread start-up than it gains; those minima were measured on the IMDb reviews.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
THREADS = max(1, min(4, os.cpu_count() or 1))
MIN_CHUNK = 2048  # texts per thread below which one thread is faster (Arrow)
MIN_COMPILED_CHUNK = 256  # the same for the compiled kernels (2 threads from 512 texts)


def bounds(count: int, min_chunk: int = MIN_CHUNK) -> list[int]:
    """Where ``count`` texts are cut into one consecutive chunk per thread (no chunk below
    ``min_chunk`` texts, unless there is just one)."""
    n = max(1, min(THREADS, count // min_chunk))
    return [count * i // n for i in range(n + 1)]


def threads(fn: Callable[[int], T], n: int) -> list[T]:
    """``[fn(0), ..., fn(n - 1)]``, on ``n`` threads."""
    if n == 1:
        return [fn(0)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def per_chunk(fn: Callable[[list[bytes]], T], texts: list[bytes],
              min_chunk: int = MIN_CHUNK) -> list[T]:
    """``fn`` of each consecutive chunk of ``texts``, a chunk per thread."""
    cuts = bounds(len(texts), min_chunk)
    return threads(lambda i: fn(texts[cuts[i]:cuts[i + 1]]), len(cuts) - 1)
