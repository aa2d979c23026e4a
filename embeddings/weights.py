"""The tutorial model's weights: one table of their names in every framework, and their shapes.

Every place that names a weight reads this table: the native model's parameters and a
run's ``model.safetensors`` use the native names, Keras addresses variables by layer and
variable name, a ``.weights.h5`` file stores them as ``layers/<layer>/vars/<slot>``, and
TensorFlow's ``model.get_weights()`` lists them in the table's order (the layers' order,
each layer's variables in slot order).  Layouts are Keras's: a Dense kernel is
``(in, out)``.  No torch is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Weight:
    """One weight of the tutorial model.

    Args:
        native (str): the native parameter name, also the safetensors key.
        layer (str): the Keras layer's name in the tutorial's ``Sequential``.
        variable (str): the Keras variable's name within that layer.
        slot (int): the variable's position among the layer's variables.
    """

    native: str
    layer: str
    variable: str
    slot: int

    @property
    def keras(self) -> str:
        """``layer/variable``: the end of the Keras variable's ``path``."""
        return f"{self.layer}/{self.variable}"


WEIGHTS = (
    Weight("embedding.embeddings", "embedding", "embeddings", 0),
    Weight("dense.kernel", "dense", "kernel", 0),
    Weight("dense.bias", "dense", "bias", 1),
    Weight("dense_1.kernel", "dense_1", "kernel", 0),
    Weight("dense_1.bias", "dense_1", "bias", 1),
)
NAMES = tuple(w.native for w in WEIGHTS)
LAYERS = ("embedding", "dense", "dense_1")  # the layers that hold weights, in model order


def shapes(vocab_size: int, embedding_dim: int, hidden_units: int) -> dict[str, tuple[int, ...]]:
    """Each weight's shape for a model of ``V`` rows, width ``D`` and ``H`` hidden units."""
    v, d, h = vocab_size, embedding_dim, hidden_units
    return {"embedding.embeddings": (v, d), "dense.kernel": (d, h), "dense.bias": (h,),
            "dense_1.kernel": (h, 1), "dense_1.bias": (1,)}


def dims(arrays: Mapping[str, Any], where: str) -> tuple[int, int, int]:
    """``(V, D, H)`` of a set of tutorial-model arrays, after checking names and shapes.

    Args:
        arrays (Mapping[str, Any]): native name -> array or tensor (anything with ``shape``).
        where (str): what to name in an error (a file, a model).

    Returns:
        tuple[int, int, int]: vocabulary rows, embedding width, hidden units.

    Raises:
        ValueError: names other than :data:`NAMES`, or shapes that do not fit together.
    """
    if set(arrays) != set(NAMES):
        raise ValueError(
            f"{where} does not hold the tutorial model's weights. "
            f"Received: names={sorted(arrays)}; expected {sorted(NAMES)}."
        )
    table = tuple(arrays["embedding.embeddings"].shape)
    kernel = tuple(arrays["dense.kernel"].shape)
    if len(table) != 2 or len(kernel) != 2:
        raise ValueError(f"{where}: the embedding table and dense.kernel must be 2-D. "
                         f"Received: shapes {table} and {kernel}.")
    expected = shapes(table[0], table[1], kernel[1])
    wrong = {n: tuple(arrays[n].shape) for n in NAMES if tuple(arrays[n].shape) != expected[n]}
    if wrong:
        raise ValueError(
            f"{where}: the weights' shapes do not fit together. Received: {wrong}; expected "
            f"{ {n: expected[n] for n in wrong} } for V={table[0]}, D={table[1]}, "
            f"H={kernel[1]}."
        )
    return table[0], table[1], kernel[1]
