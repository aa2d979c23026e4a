"""The hot loop: a mean embedding bag and a gather with their own backward.

* :mod:`embeddings.ops.bag`: the autograd ops, :class:`MeanEmbedding` and the
  squared-gradient contract;
* :mod:`embeddings.ops.rows`: the sparse backward, the touched rows and their sums;
* :mod:`embeddings.ops.dispatch`: the one table that picks an implementation per call;
* :mod:`embeddings.ops.cpu` (C through ``ctypes``), :mod:`embeddings.ops.cuda` (Triton)
  and :mod:`embeddings.ops.reference` (pure torch): the same functions, the same values.
"""

from embeddings.ops.bag import (
    MeanEmbedding,
    embedding_bag_mean,
    embedding_gather,
    resolve_deterministic,
    scatter_occurrences,
    square_sinks,
)
from embeddings.ops.dispatch import kernels_for, use
from embeddings.ops.reference import tf_order_mean, tf_order_sum
from embeddings.ops.rows import row_sums

__all__ = [
    "MeanEmbedding",
    "embedding_bag_mean",
    "embedding_gather",
    "kernels_for",
    "resolve_deterministic",
    "row_sums",
    "scatter_occurrences",
    "square_sinks",
    "tf_order_mean",
    "tf_order_sum",
    "use",
]
