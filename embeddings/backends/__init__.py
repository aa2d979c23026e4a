"""The three ways to train the tutorial model, behind one contract (:mod:`.contract`).

* ``torch``: :mod:`embeddings.backends.native`, the native PyTorch model;
* ``keras``: :mod:`embeddings.backends.keras`, Keras 3 on its torch backend;
* ``tf``: :mod:`embeddings.backends.tf`, the TensorFlow tutorial itself.

:func:`get` imports a backend's module only when it is asked for, so that Keras and
TensorFlow load only for the backend that uses them.
"""

from __future__ import annotations

import importlib

from embeddings.backends.contract import (
    HISTORY_KEYS,
    Backend,
    Hooks,
    TrainResult,
    UnsupportedFlag,
    check,
    saves_checkpoints,
)
from embeddings.config import BACKENDS

_MODULES = {"torch": "embeddings.backends.native", "keras": "embeddings.backends.keras",
            "tf": "embeddings.backends.tf"}


def get(name: str) -> Backend:
    """The backend called ``name`` (a ``--backend`` value).

    Raises:
        ValueError: an unknown name.
    """
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}. Received: {name!r}")
    backend: Backend = importlib.import_module(_MODULES[name]).BACKEND
    return backend


__all__ = ["HISTORY_KEYS", "Backend", "Hooks", "TrainResult", "UnsupportedFlag", "check",
           "get", "saves_checkpoints"]
