"""The tutorial's classifier in native PyTorch, with Keras's initializers, loss and metric.

Shape letters: B batch (1024), T sequence length (100), V vocabulary (10,000),
D embedding width (16), H hidden units (16).

``ids (B, T) -> MeanEmbedding -> (B, D) -> Dense(H) + ReLU -> (B, H) -> Dense(1) -> (B,)``

Parameters keep the Keras layout and names (:mod:`embeddings.weights`), so they map one
to one: ``embedding.embeddings`` ``(V, D)``, ``dense.kernel`` ``(D, H)``, ``dense.bias``,
``dense_1.kernel`` ``(H, 1)``, ``dense_1.bias``.  There is no ``padding_idx``: padding
positions count in the mean and the padding row trains, as in Keras; with ``mask_padding``
(``--mask-padding``, Keras's ``Embedding(mask_zero=True)``) they are left out of each mean
and the padding row gets no gradient.  The embedding also
owns ``embedding.occurrence_squares``, the sink of its per-occurrence squared gradient
(:mod:`embeddings.ops.bag`), which holds no weights and is not in ``state_dict()``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from embeddings import weights
from embeddings.ops import MeanEmbedding
from embeddings.tfrandom import stateless_uniform


class Dense(nn.Module):
    """Keras ``Dense``: ``x @ kernel + bias`` with a ``(in, out)`` kernel.

    The matmul and the bias add are separate float32 operations, as in Keras
    (a fused ``addmm`` rounds differently).

    Args:
        in_features (int): input width.
        out_features (int): output width.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        limit = glorot_limit(in_features, out_features)
        nn.init.uniform_(self.kernel, -limit, limit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.kernel) + self.bias  # (B, in) -> (B, out)


def glorot_limit(fan_in: int, fan_out: int) -> float:
    """Keras ``glorot_uniform``'s bound, computed in the same Python float steps."""
    scale = 1.0 / max(1.0, (fan_in + fan_out) / 2.0)
    return math.sqrt(3.0 * scale)


class SentimentClassifier(nn.Module):
    """Embedding -> mean over all positions -> Dense(H, relu) -> Dense(1), giving logits.

    Args:
        vocab_size (int): V, rows of the embedding table.
        embedding_dim (int): D. Default: ``16``.
        hidden_units (int): H. Default: ``16``.
        deterministic (bool | None): a reproducible embedding backward on CUDA (see
            :func:`embeddings.ops.embedding_bag_mean`). Default: ``None``, torch's setting.
        mask_padding (bool): leave id 0 (padding) out of each mean. Default: ``False``.
        precision (str): the embedding lookup's, ``"float32"`` or ``"bf16"`` (a bfloat16
            copy of the table, see :class:`~embeddings.ops.MeanEmbedding`). Default:
            ``"float32"``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 16, hidden_units: int = 16,
                 deterministic: bool | None = None, mask_padding: bool = False,
                 precision: str = "float32") -> None:
        super().__init__()
        self.embedding = MeanEmbedding(vocab_size, embedding_dim, deterministic,
                                       mask_zero=mask_padding, precision=precision)
        self.dense = Dense(embedding_dim, hidden_units)
        self.dense_1 = Dense(hidden_units, 1)

    @classmethod
    def from_weights(cls, arrays: Mapping[str, np.ndarray | torch.Tensor],
                     where: str = "the weights", mask_padding: bool = False
                     ) -> SentimentClassifier:
        """The model holding ``arrays`` (native names, Keras layout), in evaluation mode;
        ``mask_padding`` as the weights were trained (a run's ``model.mask_padding``).

        Raises:
            ValueError: names or shapes that are not the tutorial model's (naming ``where``).
        """
        vocab_size, dim, hidden = weights.dims(arrays, where)
        model = cls(vocab_size, dim, hidden, mask_padding=mask_padding)
        model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()})
        return model.eval()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of id sequences.

        Args:
            ids (torch.Tensor): ``(B, T)`` int64 ids.

        Returns:
            torch.Tensor: ``(B,)`` float32 logits.
        """
        pooled = self.embedding(ids)  # (B, T) -> (B, D)
        hidden = torch.relu(self.dense(pooled))  # (B, D) -> (B, H)
        return self.dense_1(hidden).squeeze(1)  # (B, H) -> (B, 1) -> (B,)


def keras_initial_weights(vocab_size: int, embedding_dim: int, hidden_units: int,
                          seed: int) -> dict[str, np.ndarray]:
    """The initial weights TensorFlow gives the tutorial model for ``seed``, by native name.

    ``keras.utils.set_random_seed(seed)`` seeds Python's ``random``; each layer
    then draws ``random.randint(1, 10**9)`` when it is constructed (Embedding,
    Dense, Dense) and builds its kernel with ``stateless_uniform`` on
    ``[s mod (2**31 - 2), 0]``.  Biases start at zero.  (``PARITY.md`` section 8.)

    Args:
        vocab_size (int): V.
        embedding_dim (int): D.
        hidden_units (int): H.
        seed (int): the ``keras.utils.set_random_seed`` value.

    Returns:
        dict[str, np.ndarray]: float32 arrays in Keras's layout.
    """
    rng = random.Random(seed)
    layer_seeds = [rng.randint(1, 10**9) for _ in range(3)]

    def draw(shape: tuple[int, ...], layer_seed: int, limit: float) -> np.ndarray:
        return stateless_uniform(shape, (layer_seed % (2**31 - 2), 0), -limit, limit)

    shapes = weights.shapes(vocab_size, embedding_dim, hidden_units)
    arrays = {"embedding.embeddings": draw(shapes["embedding.embeddings"], layer_seeds[0], 0.05)}
    for layer, layer_seed in (("dense", layer_seeds[1]), ("dense_1", layer_seeds[2])):
        fan_in, fan_out = shapes[f"{layer}.kernel"]
        arrays[f"{layer}.kernel"] = draw((fan_in, fan_out), layer_seed,
                                         glorot_limit(fan_in, fan_out))
        arrays[f"{layer}.bias"] = np.zeros(fan_out, dtype=np.float32)
    return arrays


@torch.no_grad()
def keras_init_(model: SentimentClassifier, seed: int) -> None:
    """Give ``model`` the initial weights TensorFlow gives the tutorial for ``seed``
    (:func:`keras_initial_weights`).

    Args:
        model (SentimentClassifier): the model to fill in place.
        seed (int): the ``keras.utils.set_random_seed`` value.
    """
    vocab_size, dim = model.embedding.embeddings.shape
    arrays = keras_initial_weights(vocab_size, dim, model.dense.kernel.shape[1], seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})


def binary_crossentropy_from_logits(logits: torch.Tensor, labels: torch.Tensor,
                                    batch: int | None = None) -> torch.Tensor:
    """Keras ``BinaryCrossentropy(from_logits=True)``: batch mean of the per-review loss.

    Written with the same operations as ``tf.nn.sigmoid_cross_entropy_with_logits``
    (``max(x, 0) - x z + log1p(exp(-|x|))``, the branches chosen by ``x >= 0``), so
    autograd differentiates the same expression TensorFlow does; the sum is then
    divided by the batch size.

    Args:
        logits (torch.Tensor): ``(B,)`` float logits.
        labels (torch.Tensor): ``(B,)`` labels in {0, 1}, any dtype.
        batch (int | None): the size of the whole batch when ``logits`` are one rank's
            share of it (data-parallel training): the sum is divided by it, so each
            review's gradient is the one-process value. Default: ``None``, ``B``.

    Returns:
        torch.Tensor: the scalar loss.
    """
    z = labels.to(logits.dtype)
    positive = logits >= 0
    relu_logits = torch.where(positive, logits, torch.zeros_like(logits))
    neg_abs_logits = torch.where(positive, -logits, logits)
    per_review = (relu_logits - logits * z) + torch.log1p(torch.exp(neg_abs_logits))
    return per_review.sum() / (logits.shape[0] if batch is None else batch)


def keras_predictions(logits: torch.Tensor) -> torch.Tensor:
    """The class Keras's ``'accuracy'`` sees for this model: 1 where the *logit* is above 0.5.

    Keras resolves ``'accuracy'`` on a one-unit output to ``BinaryAccuracy(0.5)``
    applied to the raw output, which here is a logit (``PARITY.md`` section 8).
    """
    return (logits > 0.5).to(torch.int64)
