"""The one contract every training backend implements.

A backend takes the whole run configuration and the loaded reviews and returns one
:class:`TrainResult`: the Keras-style history, the trained weights under the native
names (:mod:`embeddings.weights`), the vocabulary, the review counts, the device it
ran on and the versions of the libraries it used.  Before any data is read,
:func:`check` asks it which flags it cannot honour (each is refused with a message
naming the flag and the backend: nothing is silently ignored) and whether it can run
here at all (extras installed, device present).

Every backend starts its embedding table from :func:`initial_table`, which applies
``--init-vectors`` the same way for all three (the file itself is checked by :func:`check`).

A backend that is ``resumable`` (``--backend torch``) starts from
``hooks.checkpoints.latest`` when it is set and saves checkpoints through
``hooks.checkpoints``; the others refuse ``--checkpoint-every`` (except ``never``).

Each epoch, a backend calls ``hooks.on_epoch_end(epoch, logs)`` with the epoch's
``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and ``seconds``, and, after
every step, ``hooks.on_step(running_loss)`` with the epoch's running mean loss (what
Keras logs at each batch end).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from embeddings import interrupt, vectors
from embeddings.backends.distributed import launched  # imports no torch
from embeddings.config import RunConfig
from embeddings.data import Splits
from embeddings.errors import InvalidInput

if TYPE_CHECKING:
    from embeddings.runs.checkpoint import Checkpoints

log = logging.getLogger(__name__)

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Hooks:
    """What a backend reports while it trains, and the run's checkpoints (only for a
    backend that is :attr:`~Backend.resumable`; ``None`` when the run saves none)."""

    on_epoch_end: EpochCallback | None = None
    on_step: Callable[[float], None] | None = None
    checkpoints: Checkpoints | None = None


@dataclass
class TrainResult:
    """What every backend returns."""

    history: dict[str, list[float]]  # HISTORY_KEYS -> one value per epoch
    weights: dict[str, np.ndarray]  # native names, Keras layout
    vocabulary: list[str]
    train_reviews: int
    val_reviews: int
    device: str  # where it trained, e.g. "cpu", "cuda:0", "tensorflow:/CPU:0"
    versions: dict[str, str] = field(default_factory=dict)  # library -> version
    init_vectors: dict[str, Any] | None = None  # --init-vectors: file, sha256, matched, words


class Backend(Protocol):
    """A way to train the tutorial model (see the module docstring)."""

    name: str
    resumable: bool  # saves checkpoints through hooks.checkpoints and resumes from them
    data_parallel: bool  # trains as one rank of several under torchrun

    def unsupported(self, config: RunConfig) -> dict[str, str]:
        """``{flag: why}`` for every set flag this backend cannot honour."""

    def check_ready(self, config: RunConfig) -> None:
        """Raise a :class:`~embeddings.errors.UsageError` if this backend cannot run
        ``config`` here (a missing extra, an absent device); called before data is read."""

    def train(self, config: RunConfig, data: Splits, hooks: Hooks) -> TrainResult:
        """Train on ``data`` (both subsets in pass-0 order) as ``config`` says."""


class HonoursEveryFlag:
    """The default of :meth:`Backend.unsupported` for a backend that honours every flag
    (all three today); one that cannot honour a flag overrides it."""

    resumable = False
    data_parallel = False

    def unsupported(self, config: RunConfig) -> dict[str, str]:
        return {}


def torch_only(config: RunConfig, whose: str) -> dict[str, str]:
    """``{flag: why}`` for the set flags that only ``--backend torch`` honours:
    ``--table-update rows`` and ``--precision bf16``, refused by a backend whose layers
    ``whose`` names (``"Keras's"``, ``"the tutorial's"``)."""
    refused = {}
    if config.train.table_update != "dense":
        refused["table_update"] = (f"{whose} Adam updates every row of the table each step; "
                                   "the row-wise update is --backend torch's")
    if config.train.precision != "float32":
        refused["precision"] = (f"{whose} Embedding looks the table up in float32; the "
                                "bfloat16 lookup is --backend torch's")
    return refused


class UnsupportedFlag(InvalidInput):
    """A flag the chosen backend cannot honour."""


def check(backend: Backend, config: RunConfig) -> None:
    """Refuse the flags ``backend`` cannot honour, then check that it can run here.

    Raises:
        UnsupportedFlag: the first flag it cannot honour, by name.
        UsageError: the backend cannot run here (see :meth:`Backend.check_ready`).
    """
    refused = dict(backend.unsupported(config))
    if config.train.checkpoint_every not in ("auto", "never") and not backend.resumable:
        refused["checkpoint_every"] = ("it saves no checkpoint and cannot resume; "
                                       "--backend torch can")
    if launched() and not backend.data_parallel:
        raise UnsupportedFlag(
            f"--backend {backend.name} cannot train data-parallel: it runs as one process. "
            f"Received: --backend {backend.name} under torchrun (WORLD_SIZE="
            f"{os.environ.get('WORLD_SIZE')}); run it without torchrun or use --backend torch.")
    for flag, why in refused.items():
        raise UnsupportedFlag(
            f"--{flag.replace('_', '-')} cannot be honoured by --backend {backend.name}: "
            f"{why}. Received: --backend {backend.name} with --{flag.replace('_', '-')}; "
            "drop the flag or choose another backend."
        )
    if config.model.init_vectors is not None:
        vectors.check_file(config.model.init_vectors, config.model.embedding_dim)
    backend.check_ready(config)


def saves_checkpoints(backend: Backend, config: RunConfig) -> bool:
    """Whether a run of ``config`` on ``backend`` saves checkpoints: ``auto`` means where
    the backend can resume (``--backend torch``), ``never`` never, any other value always
    (:func:`check` refuses it for a backend that cannot resume)."""
    if config.train.checkpoint_every == "auto":
        return backend.resumable
    return config.train.checkpoint_every != "never"


def initial_table(config: RunConfig, vocabulary: list[str],
                  table: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The embedding table a run starts from: ``table`` (the seed's initial weights) with
    the rows ``--init-vectors`` fills replaced; every backend calls this, after adapting
    its vocabulary and before training.

    Args:
        config (RunConfig): the run's settings.
        vocabulary (list[str]): the adapted tokens in id order, ``''`` first.
        table (np.ndarray): ``(V, D)`` float32 initial embedding, changed in place.

    Returns:
        tuple[np.ndarray, dict | None]: the table, and the report of
        :meth:`embeddings.vectors.PretrainedRows.report` (``None`` without the flag).

    Raises:
        UsageError: the file is missing or malformed (naming ``file:line``).
    """
    if config.model.init_vectors is None:
        return table, None
    rows = vectors.read_vectors(config.model.init_vectors, vocabulary,
                                config.model.embedding_dim)
    log.info(rows.summary())
    return vectors.apply(table, rows), rows.report()


def keras_history_callback(keras: Any, history: dict[str, list[float]], hooks: Hooks) -> Any:
    """A ``keras.callbacks.Callback`` that fills ``history`` and calls ``hooks``.

    Shared by the Keras and TensorFlow backends.  Keras is passed in, not imported: each
    backend imports it its own way (on torch, on TensorFlow).

    Args:
        keras (module): the loaded ``keras`` package.
        history (dict[str, list[float]]): filled in place, one value per epoch and key.
        hooks (Hooks): the backend's hooks.
    """

    class EpochReport(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {k: float((logs or {})[k]) for k in HISTORY_KEYS if k != "seconds"}
            values["seconds"] = time.perf_counter() - self.start
            for key in HISTORY_KEYS:
                history.setdefault(key, []).append(values[key])
            if hooks.on_epoch_end is not None:
                hooks.on_epoch_end(epoch, values)

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            interrupt.hold()  # a signal stops training between steps, not within

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            interrupt.release()
            if hooks.on_step is not None:
                hooks.on_step(float((logs or {})["loss"]))

    return EpochReport()
