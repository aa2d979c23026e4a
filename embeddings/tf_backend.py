"""``--backend tf``: the TensorFlow tutorial itself, run through the same CLI.

Needs the ``tf`` extra.  The reviews come from :func:`embeddings.data.load_imdb`
in the tutorial's cached epoch order (the same batches ``text_dataset_from_directory``
yields, see ``PARITY.md`` section 6); everything else is the tutorial's code:
Keras's ``TextVectorization`` with the custom standardization, ``adapt``,
``keras.utils.set_random_seed(seed)``, the ``Sequential`` model, ``compile`` and
``fit``.  The run directory is written by :mod:`embeddings.train` like the other
backends', so the three can be put side by side.
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

INSTALL = "pip install 'embeddings[tf]'"


def import_tensorflow() -> tuple[Any, Any]:
    """``(tensorflow, keras)`` with Keras on its TensorFlow backend.

    Raises:
        ImportError: TensorFlow is not installed (the message gives the install line).
        RuntimeError: Keras is set to, or already loaded on, another backend.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(f"--backend tf needs TensorFlow: {INSTALL}")
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen not in (None, "", "tensorflow"):
        raise RuntimeError(
            f"KERAS_BACKEND={chosen} is set, but --backend tf runs Keras on TensorFlow. "
            f"Received: KERAS_BACKEND={chosen!r}; unset it or set KERAS_BACKEND=tensorflow."
        )
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(f"--backend tf needs TensorFlow: {INSTALL}") from err
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Keras is already loaded on the {keras.backend.backend()} backend in this process; "
            "--backend tf needs a fresh process."
        )
    return tf, keras


def fit_tf(
    train: Any,
    val: Any,
    *,
    vocab_size: int,
    sequence_length: int,
    embedding_dim: int,
    hidden_units: int,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    seed: int,
    reshuffle: bool,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, torch.Tensor], list[str]]:
    """Run the tutorial in TensorFlow on ``train``/``val`` (datasets from ``load_imdb``).

    Returns:
        tuple: the Keras history (plus ``seconds``), the trained weights under the
        native parameter names, and TensorFlow's vocabulary.
    """
    tf, keras = import_tensorflow()
    from embeddings.callbacks import epoch_report
    from embeddings.data import exact_texts
    from embeddings.model import KERAS_NAMES

    def as_bytes(ds: Any) -> list[bytes]:
        return [t if isinstance(t, bytes) else t.encode("utf-8", "surrogateescape")
                for t in exact_texts(ds)]

    def dataset(ds: Any, shuffle: bool) -> Any:
        data = tf.data.Dataset.from_tensor_slices(
            (tf.constant(as_bytes(ds)), tf.constant(np.asarray(ds["label"], dtype=np.int32))))
        if shuffle:
            data = data.shuffle(len(ds), seed=seed, reshuffle_each_iteration=True)
        return data.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)

    train_ds = dataset(train, reshuffle)
    val_ds = dataset(val, False)

    def custom_standardization(input_data: Any) -> Any:  # the tutorial's, verbatim
        lowercase = tf.strings.lower(input_data)
        stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
        return tf.strings.regex_replace(stripped_html, "[%s]" % re.escape(string.punctuation),  # noqa: UP031
                                        "")

    vectorize_layer = keras.layers.TextVectorization(
        standardize=custom_standardization, max_tokens=vocab_size, output_mode="int",
        output_sequence_length=sequence_length)
    vectorize_layer.adapt(train_ds.map(lambda x, y: x))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        vectorize_layer,
        keras.layers.Embedding(vocab_size, embedding_dim, name="embedding"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(hidden_units, activation="relu"),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    history: dict[str, list[float]] = {}
    model.fit(train_ds, validation_data=val_ds, epochs=epochs,
              callbacks=[epoch_report(keras, history, on_epoch_end)], verbose=0)
    arrays = [w for layer in model.layers[1:] for w in layer.get_weights()]
    weights = {name: torch.from_numpy(np.array(a, dtype=np.float32))
               for name, a in zip(KERAS_NAMES, arrays, strict=True)}
    vocabulary = [str(t) for t in vectorize_layer.get_vocabulary()]
    return history, weights, vocabulary
