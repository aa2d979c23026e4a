"""``--backend keras``: Keras 3's ``Sequential`` fitted with ``model.fit`` on Keras's torch backend.

No TensorFlow in the process: the reviews are vectorized by our engine
(:mod:`embeddings.backends.vectorized`), the model is :func:`embeddings.keras_model.build_model`
(an :class:`~embeddings.keras_model.OccurrenceEmbedding` and TensorFlow-rule Adam), it
starts from the seed's TensorFlow weights, and ``fit`` reads each epoch's training rows
in the tutorial's order through a ``keras.utils.PyDataset`` whose order follows the
epoch.  Keras is imported only when this backend checks or trains.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from embeddings.backends.contract import (
    HonoursEveryFlag,
    Hooks,
    TrainResult,
    initial_table,
    keras_history_callback,
    torch_only,
)
from embeddings.backends.native import resolve_device
from embeddings.backends.vectorized import Vectorized, epoch_order, vectorize
from embeddings.config import RunConfig
from embeddings.data import Splits
from embeddings.model import keras_initial_weights


def _epoch_batches(keras: Any, inputs: Vectorized, config: RunConfig) -> Any:
    """A ``PyDataset`` of the training batches; ``epoch`` selects the epoch's row order."""

    base: Any = keras.utils.PyDataset

    class EpochBatches(base):
        def __init__(self) -> None:
            super().__init__()
            self.ids = inputs.train_ids.cpu().numpy()
            self.labels = inputs.train_labels.cpu().numpy()
            self.size = config.train.batch_size
            self.order: np.ndarray | None = None

        def set_epoch(self, epoch: int) -> None:
            order = epoch_order(config, len(self.ids), epoch)
            self.order = None if order is None else order.numpy()

        def __len__(self) -> int:
            return -(-len(self.ids) // self.size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = slice(index * self.size, (index + 1) * self.size)
            if self.order is None:
                return self.ids[rows], self.labels[rows]
            picked = self.order[rows]
            return self.ids[picked], self.labels[picked]

    return EpochBatches()


class KerasBackend(HonoursEveryFlag):
    """``--backend keras``: honours every flag but ``--table-update rows`` and
    ``--precision bf16``."""

    name = "keras"

    def unsupported(self, config: RunConfig) -> dict[str, str]:
        """``--table-update rows``: Keras's Adam updates every row of the table each step;
        ``--precision bf16``: Keras's ``Embedding`` looks the table up in float32."""
        return torch_only(config, "Keras's")

    def check_ready(self, config: RunConfig) -> None:
        from embeddings import keras_model  # noqa: F401 - a missing extra fails here

        resolve_device(config.train.device)

    def train(self, config: RunConfig, data: Splits, hooks: Hooks) -> TrainResult:
        from embeddings import keras_model

        keras = keras_model.keras
        device = resolve_device(config.train.device)
        inputs = vectorize(config, data, device)
        initial = keras_initial_weights(config.text.vocab_size, config.model.embedding_dim,
                                        config.model.hidden_units, config.train.seed)
        initial["embedding.embeddings"], report = initial_table(
            config, inputs.vectorizer.get_vocabulary(), initial["embedding.embeddings"])
        history: dict[str, list[float]] = {}
        batches = _epoch_batches(keras, inputs, config)

        callback: Any = keras.callbacks.Callback

        class FollowEpoch(callback):
            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                batches.set_epoch(epoch)

        with keras.device(keras_model.keras_device(device)):
            model = keras_model.build_model(
                config.text.vocab_size, config.model.embedding_dim, config.model.hidden_units,
                sequence_length=config.text.sequence_length,
                learning_rate=config.train.learning_rate,
                deterministic=config.train.deterministic or None,
                mask_zero=config.model.mask_padding)
            keras_model.set_native_weights(model, initial)
            model.fit(
                batches, epochs=config.train.epochs, shuffle=False,
                validation_data=(inputs.val_ids.cpu().numpy(), inputs.val_labels.cpu().numpy()),
                validation_batch_size=config.train.batch_size,
                callbacks=[FollowEpoch(), keras_history_callback(keras, history, hooks)],
                verbose=1 if sys.stdout.isatty() else 0,
            )
        return inputs.result(history, keras_model.native_weights(model), str(device),
                             {"torch": torch.__version__, "keras": keras.__version__}, report)


BACKEND = KerasBackend()
