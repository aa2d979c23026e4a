"""The Keras callback shared by ``--backend keras`` and ``--backend tf``.

It turns Keras's epoch logs into the project's history (the Keras keys plus the
epoch's ``seconds``) and hands each epoch to the training CLI, which prints the
Keras-style line and writes TensorBoard scalars through ``torch.utils.tensorboard``.
Keras is passed in, not imported: each backend imports it its own way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
EpochCallback = Callable[[int, dict[str, float]], None]


def epoch_report(keras: Any, history: dict[str, list[float]],
                 on_epoch_end: EpochCallback | None = None,
                 on_step: Callable[[float], None] | None = None) -> Any:
    """A ``keras.callbacks.Callback`` that fills ``history`` and reports each epoch.

    Args:
        keras (module): the loaded ``keras`` package.
        history (dict[str, list[float]]): filled in place, one value per epoch and key.
        on_epoch_end (Callable | None): called with the epoch and its values. Default: ``None``.
        on_step (Callable | None): called with Keras's running loss after every batch.
            Default: ``None``.
    """

    class EpochReport(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {k: float((logs or {})[k]) for k in HISTORY_KEYS if k != "seconds"}
            values["seconds"] = time.perf_counter() - self.start
            for key in HISTORY_KEYS:
                history.setdefault(key, []).append(values[key])
            if on_epoch_end is not None:
                on_epoch_end(epoch, values)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if on_step is not None:
                on_step(float((logs or {})["loss"]))

    return EpochReport()
