"""The hot loop: a mean embedding bag with its own forward and backward.

``embedding_bag_mean(weight, ids)`` gathers the rows of ``weight`` named by a
``(B, T)`` id matrix and averages over all ``T`` positions, padding included,
as ``Embedding`` + ``GlobalAveragePooling1D`` do in the tutorial.

Forward order.  TensorFlow's CPU mean over ``T`` with 16 channels keeps four
interleaved float32 accumulators, ``a_r = sum_{j = r mod 4} e_j`` in increasing
``j``, combined as ``((a0 + a1) + a2) + a3`` and divided by ``T`` (``PARITY.md``
section 8).  The forward reproduces that order bit for bit.

Three implementations compute the same values.  On the CPU the compiled kernels
of :mod:`embeddings.kernels` run both passes without materializing the
``(B, T, D)`` rows; on CUDA the Triton kernels of :mod:`embeddings.triton_kernels`
do, with a reproducible (sorted) backward on request; elsewhere, without a C
compiler or without Triton, the torch formulation below runs.  The forwards agree
bit for bit; the backwards agree up to the float32 order of the sums (exactly on
the CPU).

Backward.  TensorFlow hands the optimizer one gradient row per token
*occurrence*: ``g_b / T`` for every position of bag ``b``.  Keras's Adam sums
those rows for its first moment and sums their squares for its second
(``PARITY.md`` section 7).  The backward therefore produces both in one pass
over the ids: the gradient (``weight.grad``, the sum) and
``weight.grad_sq`` (the sum of squares), each accumulated in occurrence order
like TensorFlow's ``unsorted_segment_sum``.
"""

from __future__ import annotations

import functools
from types import ModuleType
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


def scatter_occurrences(rows: torch.Tensor, ids: torch.Tensor, count: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sums of occurrence gradients and of their squares, in occurrence order.

    This is what TensorFlow's Adam receives from a gather's ``IndexedSlices``: the
    ``(count, D)`` sum of ``rows[i]`` at ``ids[i]`` (the gradient) and the sum of
    ``rows[i] ** 2`` (the second-moment input).

    Args:
        rows (torch.Tensor): ``(N, D)`` gradient row of each occurrence.
        ids (torch.Tensor): ``(N,)`` int64 row of each occurrence.
        count (int): rows of the table.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: the sums and the squared sums, ``(count, D)``.
    """
    rows, ids = rows.contiguous(), ids.contiguous()
    if kernels.usable(rows, ids):
        return kernels.scatter_rows_sums(rows, ids, count)
    dim = rows.shape[1]
    sums = torch.zeros(count, 2 * dim, dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, ids, torch.cat([rows, rows * rows], dim=1))  # (N, 2D) -> (V, 2D)
    return sums[:, :dim], sums[:, dim:]


def add_grad_sq(weight: torch.Tensor, squares: torch.Tensor) -> None:
    """Accumulate ``squares`` into ``weight.grad_sq`` as autograd accumulates ``grad``."""
    prior = getattr(weight, "grad_sq", None)
    weight.grad_sq = squares if prior is None else prior + squares  # type: ignore[attr-defined]


@functools.cache
def _triton_module() -> ModuleType | None:
    try:
        from embeddings import triton_kernels
    except ImportError:  # no Triton: the torch formulation runs on CUDA too
        return None
    return triton_kernels


def gpu_kernels(tensor: torch.Tensor) -> ModuleType | None:
    """:mod:`embeddings.triton_kernels` for a CUDA tensor when Triton imports, else ``None``."""
    return _triton_module() if tensor.device.type == "cuda" else None


def _resolve_deterministic(deterministic: bool | None, weight: torch.Tensor) -> bool:
    """``None`` follows ``torch.are_deterministic_algorithms_enabled()``; a CUDA request
    that no path can honour is an error rather than a silent non-reproducible backward."""
    wanted = torch.are_deterministic_algorithms_enabled() if deterministic is None \
        else deterministic
    if (wanted and weight.device.type == "cuda" and gpu_kernels(weight) is None
            and not torch.are_deterministic_algorithms_enabled()):
        raise RuntimeError(
            "deterministic=True on CUDA needs Triton (pip install triton) for the sorted "
            "backward, or torch.use_deterministic_algorithms(True) for torch's own. "
            f"Received: deterministic={deterministic}, device={weight.device}"
        )
    return wanted


class _EmbeddingBagMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, ids: torch.Tensor,
                deterministic: bool) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight = weight  # the leaf that receives grad_sq
        ctx.deterministic = deterministic
        if (gpu := gpu_kernels(weight)) is not None:
            return gpu.bag_mean_forward(weight, ids)
        if kernels.usable(weight, ids):
            return kernels.bag_mean_forward(weight, ids)  # (B, T) -> (B, D), no (B, T, D)
        kernels.check_ids(ids, weight.shape[0])
        return tf_order_mean(F.embedding(ids, weight))  # (B, T) -> (B, T, D) -> (B, D)

    @staticmethod
    def backward(ctx: Any,
                 grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (ids,) = ctx.saved_tensors
        weight: torch.Tensor = ctx.weight
        length = ids.shape[1]
        per_occurrence = (grad / length).contiguous()  # (B, D): the row of each of the T ids
        squared = per_occurrence * per_occurrence
        if (gpu := gpu_kernels(per_occurrence)) is not None:
            grad_sum, grad_sq = gpu.bag_scatter_sums(per_occurrence, squared, ids, None,
                                                     weight.shape[0], ctx.deterministic)
        elif kernels.usable(per_occurrence, ids):  # scatters each bag's row without repeating it
            grad_sum, grad_sq = kernels.bag_scatter_sums(per_occurrence, squared, ids,
                                                         weight.shape[0])
        else:
            grad_sum, grad_sq = scatter_occurrences(
                per_occurrence.repeat_interleave(length, dim=0), ids.reshape(-1),
                weight.shape[0])  # (B, D) -> (B*T, D) -> (V, D)
        add_grad_sq(weight, grad_sq)
        return grad_sum, None, None


class _RaggedBagMean(torch.autograd.Function):
    """Bags of their own lengths: 1-D ids cut at ``offsets``."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor,
                deterministic: bool) -> torch.Tensor:
        lengths = torch.diff(offsets, append=offsets.new_tensor([ids.numel()]))  # (B,)
        counts = lengths.clamp(min=1).to(weight.dtype)[:, None]  # an empty bag gives zeros
        ctx.save_for_backward(ids, offsets, lengths, counts)
        ctx.weight = weight
        ctx.deterministic = deterministic
        if (gpu := gpu_kernels(weight)) is not None:
            return gpu.bag_mean_forward(weight, ids, offsets)
        if kernels.usable(weight, ids, offsets):
            return kernels.ragged_mean_forward(weight, ids, offsets)
        kernels.check_ids(ids, weight.shape[0])
        sums = torch.zeros(len(offsets), weight.shape[1], dtype=weight.dtype,
                           device=weight.device)
        sums.index_add_(0, _bag_of(lengths), F.embedding(ids, weight))  # (N, D) -> (B, D)
        return sums / counts

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        ids, offsets, lengths, counts = ctx.saved_tensors
        weight: torch.Tensor = ctx.weight
        per_bag = (grad / counts).contiguous()  # (B, D): the row of each of the bag's ids
        if (gpu := gpu_kernels(per_bag)) is not None:
            grad_sum, grad_sq = gpu.bag_scatter_sums(per_bag, per_bag * per_bag, ids, offsets,
                                                     weight.shape[0], ctx.deterministic)
        else:
            grad_sum, grad_sq = scatter_occurrences(per_bag[_bag_of(lengths)], ids,
                                                    weight.shape[0])  # (N, D) -> (V, D)
        add_grad_sq(weight, grad_sq)
        return grad_sum, None, None, None


def _bag_of(lengths: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bag index of each occurrence, from the ``(B,)`` bag lengths."""
    return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)


def embedding_bag_mean(weight: torch.Tensor, ids: torch.Tensor,
                       offsets: torch.Tensor | None = None, *,
                       deterministic: bool | None = None) -> torch.Tensor:
    """Average the embedding rows of each bag.

    Two layouts, as in ``nn.EmbeddingBag``:

    * dense ``(B, T)`` ids: every bag has ``T`` positions and padding counts in the
      mean (the tutorial's ``GlobalAveragePooling1D``), summed in TensorFlow's order;
    * ragged: 1-D ``(N,)`` ids and ``(B,)`` ``offsets`` where each bag starts; each
      bag is averaged over its own length, an empty bag gives zeros.

    Args:
        weight (torch.Tensor): ``(V, D)`` embedding table.
        ids (torch.Tensor): ``(B, T)``, or ``(N,)`` with ``offsets``; integer ids in ``[0, V)``.
        offsets (torch.Tensor | None): ``(B,)`` non-decreasing start positions, the first 0.
            Default: ``None`` (dense ids).
        deterministic (bool | None): on CUDA, ``True`` makes the backward reproducible
            (sorted sums instead of atomic adds, slower); the CPU paths always are.
            Default: ``None``, which follows ``torch.are_deterministic_algorithms_enabled()``.

    Returns:
        torch.Tensor: ``(B, D)`` means. When ``weight`` requires grad, the backward
        sets ``weight.grad`` (sum of the per-occurrence gradients) and adds to
        ``weight.grad_sq`` (sum of their squares), both ``(V, D)``.

    Raises:
        ValueError: ids or offsets of the wrong shape, type or order.
        IndexError: ids outside the table, on the CPU (CUDA ids are not checked: that would
            wait for the GPU on every call).
        RuntimeError: ``deterministic=True`` on CUDA with neither Triton nor torch's
            deterministic mode.
    """
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must hold int64 or int32 ids. Received: ids.dtype={ids.dtype}")
    exact = _resolve_deterministic(deterministic, weight)
    if offsets is None:
        if ids.dim() != 2:
            raise ValueError(
                "ids must be a (batch, length) tensor, or 1-D with offsets. "
                f"Received: ids.shape={tuple(ids.shape)}, offsets=None"
            )
        return _EmbeddingBagMean.apply(weight, ids.to(torch.int64).contiguous(), exact)
    offsets = offsets.to(torch.int64)
    if ids.dim() != 1 or offsets.dim() != 1 or len(offsets) == 0:
        raise ValueError(
            "with offsets, ids and offsets must be 1-D and offsets non-empty. Received: "
            f"ids.shape={tuple(ids.shape)}, offsets.shape={tuple(offsets.shape)}"
        )
    if offsets[0] != 0 or bool((torch.diff(offsets) < 0).any()) or offsets[-1] > ids.numel():
        raise ValueError(
            "offsets must start at 0, never decrease and stay within the ids. Received: "
            f"offsets={offsets.tolist()[:8]}{'...' if len(offsets) > 8 else ''}, "
            f"len(ids)={ids.numel()}"
        )
    return _RaggedBagMean.apply(weight, ids.to(torch.int64).contiguous(), offsets.contiguous(),
                                exact)


class MeanEmbedding(nn.Module):
    """``Embedding`` + ``GlobalAveragePooling1D``: ``(B, T)`` ids to ``(B, D)`` means.

    The parameter is named ``embeddings`` like the Keras weight.

    Args:
        num_embeddings (int): vocabulary size V.
        embedding_dim (int): width D.
        deterministic (bool | None): see :func:`embedding_bag_mean`. Default: ``None``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 deterministic: bool | None = None) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        self.deterministic = deterministic
        nn.init.uniform_(self.embeddings, -0.05, 0.05)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return embedding_bag_mean(self.embeddings, ids, deterministic=self.deterministic)
