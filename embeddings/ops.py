"""The hot loop: a mean embedding bag with its own forward and backward.

``embedding_bag_mean(weight, ids)`` gathers the rows of ``weight`` named by a
``(B, T)`` id matrix and averages over all ``T`` positions, padding included,
as ``Embedding`` + ``GlobalAveragePooling1D`` do in the tutorial.

Forward order.  TensorFlow's CPU mean over ``T`` with 16 channels keeps four
interleaved float32 accumulators, ``a_r = sum_{j = r mod 4} e_j`` in increasing
``j``, combined as ``((a0 + a1) + a2) + a3`` and divided by ``T`` (``PARITY.md``
section 8).  The forward reproduces that order bit for bit.

On the CPU the compiled kernels of :mod:`embeddings.kernels` run both passes
without materializing the ``(B, T, D)`` rows; elsewhere, or without a C
compiler, the torch formulation below computes the same values.

Backward.  TensorFlow hands the optimizer one gradient row per token
*occurrence*: ``g_b / T`` for every position of bag ``b``.  Keras's Adam sums
those rows for its first moment and sums their squares for its second
(``PARITY.md`` section 7).  The backward therefore produces both in one pass
over the ids: the gradient (``weight.grad``, the sum) and
``weight.grad_sq`` (the sum of squares), each accumulated in occurrence order
like TensorFlow's ``unsorted_segment_sum``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embeddings import kernels

_LANES = 4  # TensorFlow's interleaved accumulators for the mean over positions


def tf_order_mean(rows: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``rows`` in TensorFlow's CPU summation order.

    Args:
        rows (torch.Tensor): ``(B, T, D)`` float tensor.

    Returns:
        torch.Tensor: ``(B, D)``, the sum in four interleaved lanes divided by ``T``.
    """
    batch, length, dim = rows.shape
    pad = -length % _LANES
    if pad:
        rows = F.pad(rows, (0, 0, 0, pad))  # adding +0.0 leaves every lane sum unchanged
    lanes = rows.view(batch, -1, _LANES, dim)  # (B, T, D) -> (B, T/4, 4, D)
    acc = torch.zeros_like(lanes[:, 0])  # (B, 4, D): each lane sums from 0, as in TensorFlow
    for k in range(lanes.shape[1]):
        acc += lanes[:, k]
    total = ((acc[:, 0] + acc[:, 1]) + acc[:, 2]) + acc[:, 3]  # (B, D)
    return total / length


class _EmbeddingBagMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor,
                ids: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight = weight  # the leaf that receives grad_sq
        if kernels.usable(weight, ids):
            return kernels.bag_mean_forward(weight, ids)  # (B, T) -> (B, D), no (B, T, D)
        return tf_order_mean(F.embedding(ids, weight))  # (B, T) -> (B, T, D) -> (B, D)

    @staticmethod
    def backward(ctx: Any,
                 grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        weight: torch.Tensor = ctx.weight
        batch, length = ids.shape
        dim = weight.shape[1]
        per_occurrence = grad / length  # (B, D): the gradient row of each of the bag's T ids
        squared = per_occurrence * per_occurrence  # (B, D)
        if kernels.usable(per_occurrence, ids):
            grad_sum, grad_sq = kernels.bag_scatter_sums(
                per_occurrence.contiguous(), squared.contiguous(), ids, weight.shape[0])
        else:
            both = torch.cat([per_occurrence, squared], dim=1)  # (B, 2D)
            sums = torch.zeros(weight.shape[0], 2 * dim, dtype=grad.dtype, device=grad.device)
            sums.index_add_(0, ids.reshape(-1), both.repeat_interleave(length, dim=0))  # (V, 2D)
            grad_sum, grad_sq = sums[:, :dim], sums[:, dim:]
        prior = getattr(weight, "grad_sq", None)
        weight.grad_sq = grad_sq if prior is None else prior + grad_sq  # type: ignore[attr-defined]
        return grad_sum, None


def embedding_bag_mean(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Average the embedding rows of each bag, padding positions included.

    Args:
        weight (torch.Tensor): ``(V, D)`` embedding table.
        ids (torch.Tensor): ``(B, T)`` int64 ids in ``[0, V)``.

    Returns:
        torch.Tensor: ``(B, D)`` means. When ``weight`` requires grad, the backward
        sets ``weight.grad`` (sum of the per-occurrence gradients) and adds to
        ``weight.grad_sq`` (sum of their squares), both ``(V, D)``.

    Raises:
        ValueError: ``ids`` is not a 2-D integer tensor.
    """
    if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            "ids must be a (batch, length) tensor of int64 or int32. "
            f"Received: ids.shape={tuple(ids.shape)}, ids.dtype={ids.dtype}"
        )
    return _EmbeddingBagMean.apply(weight, ids.to(torch.int64).contiguous())


class MeanEmbedding(nn.Module):
    """``Embedding`` + ``GlobalAveragePooling1D``: ``(B, T)`` ids to ``(B, D)`` means.

    The parameter is named ``embeddings`` like the Keras weight.

    Args:
        num_embeddings (int): vocabulary size V.
        embedding_dim (int): width D.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        nn.init.uniform_(self.embeddings, -0.05, 0.05)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return embedding_bag_mean(self.embeddings, ids)
