"""``--backend tf``: the TensorFlow tutorial itself, run through the same command line.

Needs the ``tf`` extra.  Everything after the file listing is the tutorial's code: the
subsets, in the split order ``text_dataset_from_directory`` makes (Keras's sorted walk,
``RandomState`` shuffle and split, :func:`embeddings.data.split_order`), go through
tf.data's ``shuffle(8 * batch_size, seed=split_seed)``, ``batch`` and ``cache`` (the
training subset without ``cache`` under ``--reshuffle``); then Keras's
``TextVectorization`` with the custom standardization (and ``ngrams``), ``adapt``,
``keras.utils.set_random_seed(seed)``, the ``Sequential`` model (``Embedding(mask_zero=True)``
under ``--mask-padding``), ``compile`` and ``fit``.
``--device`` picks TensorFlow's device and ``--deterministic`` turns on its op
determinism.  The run directory is written like the other backends'.
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
from typing import Any

import numpy as np

from embeddings import weights
from embeddings.backends.contract import (
    HonoursEveryFlag,
    Hooks,
    TrainResult,
    initial_table,
    keras_history_callback,
    torch_only,
)
from embeddings.config import RunConfig
from embeddings.data import Splits, exact_texts, labels, split_order
from embeddings.errors import MissingExtra, Unavailable

INSTALL = "pip install 'embeddings[tf]'"


def import_tensorflow() -> tuple[Any, Any]:
    """``(tensorflow, keras)`` with Keras on its TensorFlow backend.

    Raises:
        MissingExtra: TensorFlow is not installed (the message gives the install line).
        Unavailable: Keras is set to, or already loaded on, another backend.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingExtra(f"--backend tf needs TensorFlow: {INSTALL}")
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen not in (None, "", "tensorflow"):
        raise Unavailable(
            f"KERAS_BACKEND={chosen} is set, but --backend tf runs Keras on TensorFlow. "
            f"Received: KERAS_BACKEND={chosen!r}; unset it or set KERAS_BACKEND=tensorflow."
        )
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as err:
        raise MissingExtra(f"--backend tf needs TensorFlow: {INSTALL}") from err
    if keras.backend.backend() != "tensorflow":
        raise Unavailable(
            f"Keras is already loaded on the {keras.backend.backend()} backend in this process; "
            "--backend tf needs a fresh process."
        )
    return tf, keras


def _device(tf: Any, name: str) -> str:
    """TensorFlow's device for ``--device``.

    Raises:
        Unavailable: ``cuda`` when TensorFlow sees no GPU.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "cuda" and not gpus:
        raise Unavailable(
            "device='cuda' was asked for but TensorFlow sees no GPU (the tf extra installs "
            "tensorflow-cpu). Received: device='cuda'; use --device cpu or auto.")
    return "/GPU:0" if name == "cuda" or (name == "auto" and gpus) else "/CPU:0"


class TensorFlowBackend(HonoursEveryFlag):
    """``--backend tf``: honours every flag but ``--table-update rows`` and
    ``--precision bf16``."""

    name = "tf"

    def unsupported(self, config: RunConfig) -> dict[str, str]:
        """``--table-update rows``: the tutorial's Adam updates every row each step;
        ``--precision bf16``: the tutorial's ``Embedding`` looks the table up in float32."""
        return torch_only(config, "the tutorial's")

    def check_ready(self, config: RunConfig) -> None:
        tf, _ = import_tensorflow()
        _device(tf, config.train.device)

    def train(self, config: RunConfig, data: Splits, hooks: Hooks) -> TrainResult:
        tf, keras = import_tensorflow()
        device = _device(tf, config.train.device)
        if config.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        batch_size, split_seed = config.train.batch_size, config.data.split_seed
        tf.random.set_seed(None)  # the tutorial sets no global seed before its datasets

        def dataset(ds: Any, cache: bool) -> Any:
            # text_dataset_from_directory's pipeline, on the subset in its split order
            order = split_order(len(ds), batch_size, split_seed)
            texts = [t if isinstance(t, bytes) else t.encode("utf-8", "surrogateescape")
                     for t in exact_texts(ds)]
            pipeline = tf.data.Dataset.from_tensor_slices(
                (tf.constant([texts[i] for i in order]),
                 tf.constant(labels(ds).astype(np.int32)[order])))
            pipeline = pipeline.shuffle(8 * batch_size, seed=split_seed).batch(batch_size)
            return (pipeline.cache() if cache else pipeline).prefetch(tf.data.AUTOTUNE)

        train_ds = dataset(data.train, cache=not config.data.reshuffle)
        val_ds = dataset(data.val, cache=True)

        def custom_standardization(input_data: Any) -> Any:  # the tutorial's, verbatim
            lowercase = tf.strings.lower(input_data)
            stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
            return tf.strings.regex_replace(stripped_html,
                                            "[%s]" % re.escape(string.punctuation), "")  # noqa: UP031

        history: dict[str, list[float]] = {}
        with tf.device(device):
            vectorize_layer = keras.layers.TextVectorization(
                standardize=custom_standardization, max_tokens=config.text.vocab_size,
                output_mode="int", output_sequence_length=config.text.sequence_length,
                ngrams=config.text.ngram_widths)
            vectorize_layer.adapt(train_ds.map(lambda x, y: x))
            keras.utils.set_random_seed(config.train.seed)
            model = keras.Sequential([
                vectorize_layer,
                keras.layers.Embedding(config.text.vocab_size, config.model.embedding_dim,
                                       mask_zero=config.model.mask_padding, name="embedding"),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(config.model.hidden_units, activation="relu"),
                keras.layers.Dense(1),
            ])
            report = _init_vectors(config, model, vectorize_layer)
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=config.train.learning_rate),
                loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
            model.fit(train_ds, validation_data=val_ds, epochs=config.train.epochs,
                      callbacks=[keras_history_callback(keras, history, hooks)], verbose=0)
        # model.get_weights() lists the layers' variables in the weight table's order
        arrays = [np.array(a, dtype=np.float32) for layer in model.layers[1:]
                  for a in layer.get_weights()]
        return TrainResult(
            history=history,
            weights={w.native: a for w, a in zip(weights.WEIGHTS, arrays, strict=True)},
            vocabulary=[str(t) for t in vectorize_layer.get_vocabulary()],
            train_reviews=len(data.train), val_reviews=len(data.val),
            device=f"tensorflow:{device}",
            versions={"tensorflow": tf.__version__, "keras": keras.__version__},
            init_vectors=report)


def _init_vectors(config: RunConfig, model: Any, vectorize_layer: Any) -> dict[str, Any] | None:
    """Apply ``--init-vectors`` to the tutorial model before ``fit`` (:func:`initial_table`).

    The embedding is built here, ahead of ``fit``: its initialiser drew its seed when the
    layer was constructed, so building it earlier draws the same table.  Its rows are then
    replaced and assigned back.
    """
    if config.model.init_vectors is None:
        return None
    embedding = model.layers[1]
    if not embedding.built:
        embedding.build((None, config.text.sequence_length))
    table = np.array(embedding.get_weights()[0], dtype=np.float32)  # (V, D)
    vocabulary = [str(t) for t in vectorize_layer.get_vocabulary()]
    table, report = initial_table(config, vocabulary, table)
    embedding.set_weights([table])
    return report


BACKEND = TensorFlowBackend()
