"""The tutorial model as a Keras 3 ``Sequential`` running on Keras's torch backend.

Importing this module imports Keras with ``KERAS_BACKEND=torch`` (set before
Keras loads) and never TensorFlow: Keras's own ``TextVectorization`` and
``TensorBoard`` callback need TensorFlow, so the model is fed the integer
sequences of :class:`embeddings.text.TextVectorization` and its scalars go
through ``torch.utils.tensorboard`` (see :mod:`embeddings.train`).

Keras on torch hands Adam a dense embedding gradient, while TensorFlow hands it
one row per token occurrence and Keras's Adam then sums their *squares* into
the second moment (``PARITY.md`` sections 7 and 10).  Two extension points of
Keras close that gap:

* :class:`OccurrenceEmbedding` (a ``keras.layers.Embedding``) whose backward
  also delivers the per-row sum of squared occurrence gradients;
* :class:`TFAdam` (a ``keras.optimizers.Adam``) which uses that sum, and
  float64 square roots (correctly rounded, like ``tf.sqrt``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

from embeddings import kernels
from embeddings.ops import add_grad_sq, scatter_occurrences

BACKEND = "torch"


def _set_backend() -> None:
    """Make Keras load on torch, refusing a conflicting choice instead of switching silently."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen not in (None, "", BACKEND):
        raise RuntimeError(
            f"KERAS_BACKEND={chosen} is set, but --backend keras runs Keras on its torch backend. "
            f"Received: KERAS_BACKEND={chosen!r}; unset it or set KERAS_BACKEND=torch."
        )
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != BACKEND:
            raise RuntimeError(
                f"Keras is already loaded on the {loaded} backend in this process; "
                "--backend keras needs Keras on torch. Received: keras backend="
                f"{loaded!r}; start a fresh process with KERAS_BACKEND=torch."
            )
    os.environ["KERAS_BACKEND"] = BACKEND


_set_backend()
try:
    import keras
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "--backend keras needs Keras 3: pip install 'embeddings[keras]'"
    ) from err


class _GatherWithSquares(torch.autograd.Function):
    """``weight[ids]`` whose backward also stores the per-row sum of squared row gradients."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight = weight
        return torch.nn.functional.embedding(ids, weight)  # (B, T) -> (B, T, D)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        weight: torch.Tensor = ctx.weight
        rows = grad.reshape(-1, weight.shape[1])  # (B, T, D) -> (B*T, D): one per occurrence
        total, square = scatter_occurrences(rows, ids.reshape(-1).to(torch.int64),
                                            weight.shape[0])
        add_grad_sq(weight, square)
        return total, None


@keras.saving.register_keras_serializable(package="embeddings")
class OccurrenceEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` whose gradient also carries TensorFlow's per-occurrence squares.

    The forward is the stock layer's; the backward sets ``grad`` as usual and
    ``grad_sq`` (sum over occurrences of the squared row gradient) on the
    table, which :class:`TFAdam` uses as TensorFlow's ``IndexedSlices`` path
    does.  Saved models name it ``embeddings>OccurrenceEmbedding``;
    :mod:`embeddings.convert` writes plain ``Embedding`` layers for exchange.
    """

    def call(self, inputs: Any) -> Any:
        ids = inputs if inputs.dtype in (torch.int32, torch.int64) else inputs.to(torch.int64)
        return _GatherWithSquares.apply(self.embeddings.value, ids)


@keras.saving.register_keras_serializable(package="embeddings")
class TFAdam(keras.optimizers.Adam):
    """Keras's Adam with TensorFlow's arithmetic: the generic update rule (not the torch
    backend's fused variant), correctly rounded square roots, and, for a variable whose
    gradient came with ``grad_sq``, that sum of squares as the second-moment input."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.value.dtype
        f32 = dict(dtype=dtype, device=variable.value.device)
        step = torch.tensor(float(self.iterations.value + 1), **f32)
        beta_1_power = torch.tensor(self.beta_1, **f32) ** step
        beta_2_power = torch.tensor(self.beta_2, **f32) ** step
        lr = torch.as_tensor(getattr(learning_rate, "value", learning_rate)).to(**f32)
        alpha = lr * _sqrt(1 - beta_2_power) / (1 - beta_1_power)
        g = gradient.to(dtype).contiguous()
        g2 = getattr(variable.value, "grad_sq", None)
        variable.value.grad_sq = None  # consumed
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        p = variable.value
        if kernels.usable(p, g, m, v, *([] if g2 is None else [g2])):
            # float32 arguments: 1 - beta_1 rounds to 0.1f, as in TensorFlow
            kernels.adam_update(p, g, g2, m, v, alpha.item(), 1 - self.beta_1, 1 - self.beta_2,
                                self.epsilon)
            return
        if g2 is None:
            g2 = g * g
        with torch.no_grad():
            m.add_((g - m) * torch.tensor(1 - self.beta_1, **f32))
            v.add_((g2 - v) * torch.tensor(1 - self.beta_2, **f32))
            variable.value.sub_((m * alpha) / (_sqrt(v) + torch.tensor(self.epsilon, **f32)))


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x.double()).to(x.dtype)


def build_model(
    vocab_size: int, embedding_dim: int = 16, hidden_units: int = 16, *,
    sequence_length: int | None = None, exact_embedding: bool = True, compile: bool = True,
) -> keras.Sequential:
    """The tutorial's ``Sequential``, compiled as in the tutorial.

    Args:
        vocab_size (int): V.
        embedding_dim (int): D. Default: ``16``.
        hidden_units (int): H. Default: ``16``.
        sequence_length (int | None): builds the model for ``(None, T)`` inputs when given.
            Default: ``None`` (built on first call).
        exact_embedding (bool): use :class:`OccurrenceEmbedding` and :class:`TFAdam`
            (TensorFlow's update); ``False`` gives the stock ``Embedding`` and ``Adam``.
            Default: ``True``.
        compile (bool): compile with the tutorial's optimizer, loss and metric (an exported
            model is saved uncompiled, so any Keras loads it without optimizer state).
            Default: ``True``.

    Returns:
        keras.Sequential: layers ``embedding``, ``global_average_pooling1d``, ``dense``,
        ``dense_1``.
    """
    embedding_cls = OccurrenceEmbedding if exact_embedding else keras.layers.Embedding
    layers: list[Any] = [] if sequence_length is None else [keras.Input((sequence_length,),
                                                                        dtype="int64")]
    model = keras.Sequential(layers + [
        embedding_cls(vocab_size, embedding_dim, name="embedding"),
        keras.layers.GlobalAveragePooling1D(name="global_average_pooling1d"),
        keras.layers.Dense(hidden_units, activation="relu", name="dense"),
        keras.layers.Dense(1, name="dense_1"),
    ])
    if not compile:
        return model
    optimizer = TFAdam() if exact_embedding else keras.optimizers.Adam()
    model.compile(optimizer=optimizer,
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def keras_device(device: torch.device) -> str:
    """The ``keras.device`` name for a torch device (``"cpu:0"`` would make Keras copy each
    variable into a non-leaf tensor that receives no gradient, so plain names are used)."""
    return device.type if device.index is None else f"{device.type}:{device.index}"


def set_native_weights(model: keras.Model, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a :class:`~embeddings.model.SentimentClassifier` state (same layout) into ``model``."""
    from embeddings.model import KERAS_NAMES

    model.set_weights([state_dict[name].detach().cpu().numpy() for name in KERAS_NAMES])


def native_weights(model: keras.Model) -> dict[str, torch.Tensor]:
    """``model``'s weights under the native parameter names (bit-identical copies)."""
    from embeddings.model import KERAS_NAMES

    return {name: variable.value.detach().cpu().clone()
            for name, variable in zip(KERAS_NAMES, model.weights, strict=True)}
