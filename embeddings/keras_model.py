"""The tutorial model as a Keras 3 ``Sequential`` running on Keras's torch backend.

Importing this module imports Keras with ``KERAS_BACKEND=torch`` (set before
Keras loads) and never TensorFlow: Keras's own ``TextVectorization`` and
``TensorBoard`` callback need TensorFlow, so the model is fed the integer
sequences of :class:`embeddings.text.TextVectorization` and its scalars go
through the run's own event files (:mod:`embeddings.runs.events`).  A trained
run's raw-text-to-score path is :func:`text_model`, on the Keras layer
:class:`embeddings.layers.TextVectorization`.

Keras on torch hands Adam a dense embedding gradient, while TensorFlow hands it
one row per token occurrence and Keras's Adam then sums their *squares* into
the second moment (``PARITY.md`` sections 7 and 10).  Keras's own extension points
close that gap, with the squared-gradient contract of :mod:`embeddings.ops.bag`:

* :class:`OccurrenceEmbedding` (a ``keras.layers.Embedding``) owns a second variable,
  ``occurrence_squares``, whose gradient is the per-row sum of squared occurrence
  gradients.  It is marked ``overwrite_with_gradient``, Keras's mechanism for
  variables that receive a value from the backward pass: the optimizer writes the
  gradient into it instead of updating it, so after each step it holds that step's sums.
* :class:`TFAdam` (a ``keras.optimizers.Adam``) applies :func:`embeddings.optim.adam_update`
  (the native optimizer's update) and feeds each table its sink's squared sums.
* :class:`TFOrderAveragePooling1D` (a ``keras.layers.GlobalAveragePooling1D``) sums the
  positions in TensorFlow's CPU order (:func:`embeddings.ops.tf_order_sum`) for the masked
  mean of ``--mask-padding``, where torch's ``sum`` rounds otherwise.  The tutorial's
  unmasked mean keeps the stock layer: torch's ``mean`` over 100 positions moves the
  losses by float32 ulps only (``PARITY.md`` section 8), and the stock layer is three
  times faster than summing lane by lane in Python.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from embeddings import weights
from embeddings.errors import MissingExtra, Unavailable
from embeddings.ops import embedding_gather, tf_order_sum
from embeddings.optim import adam_scalars, adam_update
from embeddings.runs import Run, load_run

if TYPE_CHECKING:  # imported by text_model, after Keras is set on torch
    from embeddings.layers import TextModel

BACKEND = "torch"


def _set_backend() -> None:
    """Make Keras load on torch, refusing a conflicting choice instead of switching silently."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen not in (None, "", BACKEND):
        raise Unavailable(
            f"KERAS_BACKEND={chosen} is set, but --backend keras runs Keras on its torch backend. "
            f"Received: KERAS_BACKEND={chosen!r}; unset it or set KERAS_BACKEND=torch."
        )
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != BACKEND:
            raise Unavailable(
                f"Keras is already loaded on the {loaded} backend in this process; "
                "--backend keras needs Keras on torch. Received: keras backend="
                f"{loaded!r}; start a fresh process with KERAS_BACKEND=torch."
            )
    os.environ["KERAS_BACKEND"] = BACKEND


_set_backend()
try:
    import keras
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtra(
        "--backend keras needs Keras 3: pip install 'embeddings[keras]'"
    ) from err


SINK = "occurrence_squares"


@keras.saving.register_keras_serializable(package="embeddings")
class OccurrenceEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` whose gradient also carries TensorFlow's per-occurrence squares.

    The forward is the stock layer's lookup; the backward gives the table its summed
    gradient and the ``occurrence_squares`` variable the sum of squared occurrence
    gradients, which :class:`TFAdam` uses as TensorFlow's ``IndexedSlices`` path does.
    Saved models name it ``embeddings>OccurrenceEmbedding`` and store only the table;
    :mod:`embeddings.convert` writes plain ``Embedding`` layers for exchange.

    Args:
        deterministic (bool | None): a reproducible backward on CUDA (see
            :func:`embeddings.ops.embedding_bag_mean`). Default: ``None``.
        **kwargs: ``keras.layers.Embedding``'s arguments.
    """

    def __init__(self, *args: Any, deterministic: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deterministic = deterministic

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        super().build(input_shape)
        self.occurrence_squares = self.add_weight(
            shape=(self.input_dim, self.output_dim), initializer="zeros", trainable=True,
            overwrite_with_gradient=True, name=SINK)

    def call(self, inputs: Any) -> Any:
        return embedding_gather(self.embeddings.value, inputs,
                                squares=self.occurrence_squares.value,
                                deterministic=self.deterministic)

    def save_own_variables(self, store: Any) -> None:
        store["0"] = self.embeddings  # the sink holds no weights

    def load_own_variables(self, store: Any) -> None:
        self.embeddings.assign(store["0"])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "deterministic": self.deterministic}


@keras.saving.register_keras_serializable(package="embeddings")
class TFOrderAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """``keras.layers.GlobalAveragePooling1D`` (channels last, no ``keepdims``) with
    TensorFlow's float32 sum: the mean over positions, or with a mask Keras's masked mean
    (``where(mask, x, 0)`` summed, divided by the mask's count), each summed as
    :func:`embeddings.ops.tf_order_sum` does, so the pooled vectors equal TensorFlow's bit
    for bit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.data_format != "channels_last" or self.keepdims:
            raise ValueError("TFOrderAveragePooling1D takes (batch, steps, features) inputs "
                             f"and no keepdims. Received: data_format={self.data_format!r}, "
                             f"keepdims={self.keepdims}")

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return tf_order_sum(inputs) / inputs.shape[1]
        keep = mask[:, :, None].to(torch.bool)  # (B, T, 1)
        kept = torch.where(keep, inputs, torch.zeros_like(inputs))
        return tf_order_sum(kept) / keep.sum(1).to(inputs.dtype)


@keras.saving.register_keras_serializable(package="embeddings")
class TFAdam(keras.optimizers.Adam):
    """Keras's Adam with TensorFlow's arithmetic: :func:`embeddings.optim.adam_update` (the
    generic rule in float32 with correctly rounded square roots, not the torch backend's
    fused variant) and, for a table with a squared-gradient sink in the same layer, the
    sink's per-occurrence squared sums as the second-moment input.

    Args:
        squares (Mapping[str, str] | None): table variable name -> sink variable name,
            paired within each layer (by path, whatever the model's name).
            Default: ``{"embeddings": "occurrence_squares"}``.
        **kwargs: ``keras.optimizers.Adam``'s arguments.
    """

    def __init__(self, *args: Any, squares: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.squares = dict(squares if squares is not None else {"embeddings": SINK})

    def build(self, var_list: list[Any]) -> None:
        super().build(var_list)  # overwrite_with_gradient sinks get no moments
        index = {v.path: i for i, v in enumerate(var_list)}
        # variable indices, not variables: attributes holding variables would be tracked
        self._sink_index = {}
        for path, i in index.items():
            layer, _, name = path.rpartition("/")
            sink = index.get(f"{layer}/{self.squares[name]}") if name in self.squares else None
            if sink is not None:
                self._sink_index[i] = sink

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = float(torch.as_tensor(getattr(learning_rate, "value", learning_rate)))
        scalars = adam_scalars(lr, self.beta_1, self.beta_2, self.epsilon,
                               int(self.iterations.value) + 1)
        index = self._get_variable_index(variable)
        sink = self._sink_index.get(index)
        grad_sq = self._trainable_variables[sink].value if sink is not None else None
        adam_update(variable.value, gradient.to(variable.value.dtype).contiguous(), grad_sq,
                    self._momentums[index].value, self._velocities[index].value, scalars)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "squares": self.squares}


def build_model(
    vocab_size: int, embedding_dim: int = 16, hidden_units: int = 16, *,
    sequence_length: int | None = None, learning_rate: float = 1e-3,
    exact_embedding: bool = True, deterministic: bool | None = None, compile: bool = True,
    mask_zero: bool = False,
) -> keras.Sequential:
    """The tutorial's ``Sequential``, built for ``(None, T)`` int64 ids and compiled as the
    tutorial compiles it.

    Args:
        vocab_size (int): V.
        embedding_dim (int): D. Default: ``16``.
        hidden_units (int): H. Default: ``16``.
        sequence_length (int | None): T, or ``None`` for any length. Default: ``None``.
        learning_rate (float): Adam's learning rate. Default: ``1e-3``.
        exact_embedding (bool): use :class:`OccurrenceEmbedding`, :class:`TFAdam` and,
            with ``mask_zero``, :class:`TFOrderAveragePooling1D` (TensorFlow's sums and
            update); ``False`` gives the stock ``Embedding``, pooling and ``Adam``.
            Default: ``True``.
        deterministic (bool | None): see :class:`OccurrenceEmbedding`. Default: ``None``.
        compile (bool): compile with the tutorial's optimizer, loss and metric (an exported
            model is saved uncompiled, so any Keras loads it without optimizer state).
            Default: ``True``.
        mask_zero (bool): ``Embedding(mask_zero=True)``: id 0 is padding, left out of the
            pooled mean (``--mask-padding``). Default: ``False``.

    Returns:
        keras.Sequential: layers ``embedding``, ``global_average_pooling1d``, ``dense``,
        ``dense_1``.
    """
    embedding: Any = (OccurrenceEmbedding(vocab_size, embedding_dim, name="embedding",
                                          deterministic=deterministic, mask_zero=mask_zero)
                      if exact_embedding else
                      keras.layers.Embedding(vocab_size, embedding_dim, name="embedding",
                                             mask_zero=mask_zero))
    pooling = (TFOrderAveragePooling1D if exact_embedding and mask_zero
               else keras.layers.GlobalAveragePooling1D)
    model = keras.Sequential([
        keras.Input((sequence_length,), dtype="int64"),
        embedding,
        pooling(name="global_average_pooling1d"),
        keras.layers.Dense(hidden_units, activation="relu", name="dense"),
        keras.layers.Dense(1, name="dense_1"),
    ])
    if not compile:
        return model
    optimizer = (TFAdam if exact_embedding else keras.optimizers.Adam)(learning_rate=learning_rate)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def text_model(run: Run | str | os.PathLike[str], *, probabilities: bool = True
               ) -> TextModel:
    """A run's whole text-to-score path in Keras: raw reviews in, one score per review out.

    :class:`embeddings.layers.TextVectorization` with the run's vocabulary,
    standardization and sequence length (:meth:`embeddings.runs.Run.vectorizer`) feeds the
    run's model (stock ``Embedding``, the run's weights), inside an
    :class:`embeddings.layers.TextModel`.  Call it on a list of strings (``predict``
    would convert them to numbers); ``model.save("x.keras")`` keeps all of it.

    Args:
        run (Run | str | os.PathLike): a loaded run or its directory.
        probabilities (bool): end with a sigmoid (the tutorial's export model), else
            return logits. Default: ``True``.

    Returns:
        embeddings.layers.TextModel: strings ``(N,)`` -> ``(N, 1)`` float32 scores.

    Raises:
        RunFormatError: the run directory is missing a file or holds a malformed one.
    """
    from embeddings.layers import TextModel, TextVectorization

    loaded = run if isinstance(run, Run) else load_run(run)
    settings = loaded.settings
    vectorizer = TextVectorization.from_engine(loaded.vectorizer(), name="text_vectorization")
    model = build_model(settings.text.vocab_size, settings.model.embedding_dim,
                        settings.model.hidden_units,
                        sequence_length=settings.text.sequence_length, exact_embedding=False,
                        compile=False, mask_zero=settings.model.mask_padding)
    set_native_weights(model, loaded.weights)
    if probabilities:
        model = keras.Sequential([model, keras.layers.Activation("sigmoid", name="sigmoid")],
                                 name="probabilities")
    return TextModel(vectorizer, model, name="text_model")


def keras_device(device: torch.device) -> str:
    """The ``keras.device`` name for a torch device (``"cpu:0"`` would make Keras copy each
    variable into a non-leaf tensor that receives no gradient, so plain names are used)."""
    return device.type if device.index is None else f"{device.type}:{device.index}"


def native_variables(model: keras.Model) -> dict[str, Any]:
    """The model's variables by native name (:mod:`embeddings.weights`)."""
    found = {}
    for w in weights.WEIGHTS:
        matches = [v for v in model.weights if v.path == w.keras or v.path.endswith("/" + w.keras)]
        if len(matches) != 1:
            raise ValueError(f"The Keras model has no single variable {w.keras}. "
                             f"Received: {[v.path for v in model.weights]}")
        found[w.native] = matches[0]
    return found


def set_native_weights(model: keras.Model, arrays: Mapping[str, Any]) -> None:
    """Load tutorial-model weights under their native names (same layout) into ``model``."""
    for name, variable in native_variables(model).items():
        value = arrays[name]
        variable.assign(value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
                        else np.asarray(value))


def native_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """``model``'s weights under the native names (bit-identical copies)."""
    return {name: variable.value.detach().cpu().numpy().copy()
            for name, variable in native_variables(model).items()}
