"""Helpers for this project's tests and for users who test their own ports.

* :func:`assert_close`: the one comparison, always with explicit tolerances.
* :func:`write_imdb_tree`: a small ``aclImdb``-shaped folder for tests that must
  not depend on the real data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def assert_close(actual: Any, expected: Any, *, rtol: float, atol: float) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise.

    Args:
        actual (Any): tensor, array or number.
        expected (Any): same shape as ``actual``.
        rtol (float): relative tolerance (no default: every caller states it).
        atol (float): absolute tolerance (no default).
    """
    torch.testing.assert_close(_tensor(actual), _tensor(expected), rtol=rtol, atol=atol,
                               check_dtype=False)


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.as_tensor(np.asarray(x))


def write_imdb_tree(root: str | os.PathLike[str], files: Mapping[str, bytes | str]) -> Path:
    """Create ``root/aclImdb/train/...`` with ``files`` (``{"neg/1_2.txt": text}``).

    Returns:
        Path: the ``aclImdb`` folder.
    """
    base = Path(root) / "aclImdb"
    for rel, content in files.items():
        path = base / "train" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return base
