"""How much memory this machine can give, and a check made before a large allocation.

Sizes that come from a caller (flags, or the shapes a file declares) are checked against
the memory available *before* anything is allocated, so a mistake or a hostile file ends
in one clear error instead of a ``MemoryError`` or the kernel's OOM killer.  No torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from embeddings.errors import InvalidInput


def available_bytes() -> int | None:
    """Memory available to a new allocation: Linux's ``MemAvailable``, else the free
    physical pages; ``None`` where neither can be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(nbytes: int, what: str, fix: str) -> None:
    """Refuse ``nbytes`` when more than the available memory.

    Args:
        nbytes (int): what the work would allocate.
        what (str): what needs it, e.g. ``"--vocab-size 10000000 x --embedding-dim 1000"``.
        fix (str): how to need less.

    Raises:
        InvalidInput: ``nbytes`` exceeds :func:`available_bytes`.
    """
    available = available_bytes()
    if available is not None and nbytes > available:
        raise InvalidInput(f"{what} needs about {nbytes / 2**30:,.1f} GiB of memory, but "
                           f"{available / 2**30:,.1f} GiB are available. {fix}")
