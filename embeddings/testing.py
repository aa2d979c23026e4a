"""Helpers for this project's tests and for users who test their own ports.

* :func:`assert_close`: the one comparison, always with explicit tolerances.
* :func:`write_imdb_tree`: a small ``aclImdb``-shaped folder for tests that must
  not depend on the real data.
* :func:`tensorflow_python`: an interpreter that imports TensorFlow, for the tests
  that compare with it in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def tensorflow_python() -> tuple[str, dict[str, str]]:
    """An interpreter that imports TensorFlow, and the environment to run it in.

    ``$EMBEDDINGS_TF_PYTHON``, else this one.  The environment drops ``KERAS_BACKEND``: a
    test process may run Keras on torch, and TensorFlow aborts on import under that
    setting.  Without TensorFlow the calling test is skipped, or fails where
    ``EMBEDDINGS_REQUIRE_TF`` is set (``nox -s parity_live``).

    Returns:
        tuple[str, dict[str, str]]: the interpreter and the environment.
    """
    import pytest

    python = os.environ.get("EMBEDDINGS_TF_PYTHON", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    probe = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, env=env,
                           check=False)
    if probe.returncode != 0:
        message = (f"needs TensorFlow (the tf extra: pip install '.[tf]') in {python} or "
                   "EMBEDDINGS_TF_PYTHON")
        if os.environ.get("EMBEDDINGS_REQUIRE_TF"):
            pytest.fail(message)
        pytest.skip(message)
    return python, env
