"""The hot loop's two ops, with their own backward: the bag mean and the plain gather.

``embedding_bag_mean(weight, ids)`` gathers the rows of ``weight`` named by a ``(B, T)``
id matrix and averages over all ``T`` positions, padding included, as ``Embedding`` +
``GlobalAveragePooling1D`` do in the tutorial (ragged bags with ``offsets`` too); with
``mask_zero=True`` id 0 is padding left out of the mean, as ``Embedding(mask_zero=True)``
+ ``GlobalAveragePooling1D`` compute it.
``embedding_gather(weight, ids)`` is Keras's ``Embedding`` lookup, ``(B, T) -> (B, T, D)``.

Forward order.  TensorFlow's CPU sum over ``T`` (Eigen's reduction of a middle axis, with
D a whole number of packets: 8, 16, 32 ...) keeps four interleaved float32 accumulators
over the first ``T - T mod 4`` positions when ``T >= 16``, ``a_r = sum_{j = r mod 4} e_j``
in increasing ``j``, combined as ``((a0 + a1) + a2) + a3``, then adds the remaining
positions one at a time (all of them below 16); the mean divides by ``T``, the masked mean
by the count of non-padding ids (``docs/presets.md``).  Every implementation of the
forward reproduces that order bit for bit.

The squared-gradient contract.  TensorFlow hands the optimizer one gradient row per
token *occurrence*; Keras's Adam sums those rows for its first moment and sums their
*squares* for its second (``PARITY.md`` section 7).  Both ops take an optional
``squares`` tensor: a leaf of the table's shape whose *gradient* the backward sets to
the per-row sum of the squared occurrence gradients, accumulated in occurrence order
like TensorFlow's ``unsorted_segment_sum``.  It is an ordinary autograd input, so
autograd accumulates it across backward calls, DDP's hooks all-reduce it with the other
gradients (an average over ranks: multiply by ``1 / world_size`` to get the squares of
the global batch's occurrences), ``torch.compile`` traces it and a checkpoint can save it.
With ``sparse=True`` both gradients are sparse and hold the touched rows only
(:func:`row_sums`): large tables then never materialise a dense ``(V, D)`` gradient, and
:class:`embeddings.optim.KerasAdam` applies its update from those rows.
:class:`MeanEmbedding` owns it as the parameter ``occurrence_squares``;
:func:`square_sinks` tells an optimizer which table each one belongs to.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embeddings.errors import Unavailable
from embeddings.ops.dispatch import cuda_kernels, kernels_for
from embeddings.ops.reference import bag_lengths
from embeddings.ops.rows import row_sums, sparse_rows

# --precision: the dtype of the table's copy the forward reads (None: the table itself).
LOOKUP_DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bf16": torch.bfloat16}


def resolve_deterministic(deterministic: bool | None, tensor: torch.Tensor) -> bool:
    """``None`` follows ``torch.are_deterministic_algorithms_enabled()``; a CUDA request
    that no path can honour is an error rather than a silent non-reproducible backward.

    Raises:
        Unavailable: ``True`` on CUDA with neither Triton nor torch's deterministic mode (a
            ``RuntimeError``).
    """
    wanted = torch.are_deterministic_algorithms_enabled() if deterministic is None \
        else deterministic
    if (wanted and tensor.device.type == "cuda" and cuda_kernels() is None
            and not torch.are_deterministic_algorithms_enabled()):
        raise Unavailable(
            "deterministic=True on CUDA needs Triton (pip install triton) for the sorted "
            "backward, or torch.use_deterministic_algorithms(True) for torch's own. "
            f"Received: deterministic={deterministic}, device={tensor.device}"
        )
    return wanted


class _BagMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, squares: torch.Tensor | None,
                ids: torch.Tensor, offsets: torch.Tensor | None,
                deterministic: bool, mask_zero: bool, sparse: bool,
                lookup: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(ids, offsets)
        ctx.rows, ctx.deterministic, ctx.mask_zero = weight.shape[0], deterministic, mask_zero
        ctx.sparse = sparse
        read = weight if lookup is None else lookup  # the gradient is weight's either way
        return kernels_for(read, ids, offsets).bag_mean(read, ids, offsets, mask_zero)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ids, offsets = ctx.saved_tensors
        if ctx.mask_zero:  # TensorFlow: where(mask, grad / count, 0); padding rows get 0
            per_bag = grad / (ids != 0).sum(1).to(grad.dtype)[:, None]  # (B, D)
        elif offsets is None:
            per_bag = grad / ids.shape[1]  # (B, D): the row of each of the bag's T ids
        else:
            lengths = bag_lengths(ids, offsets)
            per_bag = grad / lengths.clamp(min=1).to(grad.dtype)[:, None]  # empty bags: 0
        per_bag = per_bag.contiguous()
        want_squares = ctx.needs_input_grad[1]
        squared = per_bag * per_bag if want_squares else None  # once per bag, not occurrence
        if ctx.sparse:
            rows, sums, sums_sq = row_sums(per_bag, squared, ids, offsets, ctx.rows,
                                           squares=want_squares,
                                           deterministic=ctx.deterministic,
                                           mask_zero=ctx.mask_zero)
            return (sparse_rows(rows, sums, ctx.rows),
                    None if sums_sq is None else sparse_rows(rows, sums_sq, ctx.rows),
                    None, None, None, None, None, None)
        sums, sums_sq = kernels_for(per_bag, ids, offsets).bag_scatter(
            per_bag, squared, ids, offsets, ctx.rows, squares=want_squares,
            deterministic=ctx.deterministic, mask_zero=ctx.mask_zero)
        return sums, sums_sq, None, None, None, None, None, None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, squares: torch.Tensor | None,
                ids: torch.Tensor, deterministic: bool) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.rows, ctx.deterministic = weight.shape[0], deterministic
        return F.embedding(ids, weight)  # (B, T) -> (B, T, D)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (ids,) = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1]).contiguous()  # (B, T, D) -> (B*T, D)
        sums, sums_sq = scatter_occurrences(rows, ids.reshape(-1), ctx.rows,
                                            squares=ctx.needs_input_grad[1],
                                            deterministic=ctx.deterministic)
        return sums, sums_sq, None, None


def scatter_occurrences(rows: torch.Tensor, ids: torch.Tensor, count: int, *,
                        squares: bool = True, deterministic: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row sums of occurrence gradients and of their squares, in occurrence order.

    This is what TensorFlow's Adam receives from a gather's ``IndexedSlices``: the
    ``(count, D)`` sum of ``rows[i]`` at ``ids[i]`` (the gradient) and the sum of
    ``rows[i] ** 2`` (the second-moment input).

    Args:
        rows (torch.Tensor): ``(N, D)`` gradient row of each occurrence.
        ids (torch.Tensor): ``(N,)`` int64 row of each occurrence.
        count (int): rows of the table.
        squares (bool): compute the squared sums too. Default: ``True``.
        deterministic (bool): reproducible sums on CUDA. Default: ``False``.

    Returns:
        tuple[torch.Tensor, torch.Tensor | None]: the sums and the squared sums, ``(count, D)``.
    """
    rows, ids = rows.contiguous(), ids.to(torch.int64).contiguous().view(-1, 1)
    return kernels_for(rows, ids).bag_scatter(rows, None, ids, None, count, squares=squares,
                                              deterministic=deterministic)


def _check_table(weight: torch.Tensor, squares: torch.Tensor | None,
                 lookup: torch.Tensor | None = None) -> None:
    if squares is not None and squares.shape != weight.shape:
        raise ValueError(
            "squares must have the table's shape: its gradient is the table's per-row sum of "
            f"squared occurrence gradients. Received: squares.shape={tuple(squares.shape)}, "
            f"weight.shape={tuple(weight.shape)}"
        )
    if lookup is not None and (lookup.shape != weight.shape or lookup.device != weight.device):
        raise ValueError("lookup must be a copy of the table (its shape, its device). Received: "
                         f"lookup {tuple(lookup.shape)} on {lookup.device}, weight "
                         f"{tuple(weight.shape)} on {weight.device}; use weight.bfloat16()")


def _int_ids(ids: torch.Tensor) -> torch.Tensor:
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must hold int64 or int32 ids. Received: ids.dtype={ids.dtype}")
    return ids.to(torch.int64).contiguous()


def embedding_bag_mean(weight: torch.Tensor, ids: torch.Tensor,
                       offsets: torch.Tensor | None = None, *,
                       squares: torch.Tensor | None = None,
                       deterministic: bool | None = None,
                       mask_zero: bool = False, sparse: bool = False,
                       lookup: torch.Tensor | None = None) -> torch.Tensor:
    """Average the embedding rows of each bag.

    Two layouts, as in ``nn.EmbeddingBag``:

    * dense ``(B, T)`` ids: every bag has ``T`` positions and padding counts in the
      mean (the tutorial's ``GlobalAveragePooling1D``), summed in TensorFlow's order;
      with ``mask_zero`` id 0 is padding, left out of the sum and of the count
      (``Embedding(mask_zero=True)`` + ``GlobalAveragePooling1D``, the order unchanged; a
      bag of padding only gives NaN, 0 / 0, as in TensorFlow);
    * ragged: 1-D ``(N,)`` ids and ``(B,)`` ``offsets`` where each bag starts; each
      bag is averaged over its own length, an empty bag gives zeros.

    Args:
        weight (torch.Tensor): ``(V, D)`` embedding table.
        ids (torch.Tensor): ``(B, T)``, or ``(N,)`` with ``offsets``; integer ids in ``[0, V)``.
        offsets (torch.Tensor | None): ``(B,)`` non-decreasing start positions, the first 0.
            Default: ``None`` (dense ids).
        squares (torch.Tensor | None): a ``(V, D)`` leaf that requires grad; the backward
            sets its gradient to the per-row sum of the squared occurrence gradients (see
            the module docstring). Default: ``None`` (not computed).
        deterministic (bool | None): on CUDA, ``True`` makes the backward reproducible
            (sorted sums instead of atomic adds, slower); the CPU paths always are.
            Default: ``None``, which follows ``torch.are_deterministic_algorithms_enabled()``.
        mask_zero (bool): dense ids only: id 0 is padding (see above). Default: ``False``.
        sparse (bool): the backward gives ``weight`` (and ``squares``) a coalesced sparse
            gradient holding the touched rows only (:func:`row_sums`), as
            ``nn.Embedding(sparse=True)`` does, instead of a dense ``(V, D)`` table; the
            same values. Default: ``False``.
        lookup (torch.Tensor | None): a ``(V, D)`` bfloat16 copy of ``weight`` that the forward
            reads instead, each row widened to float32 before the sum; the gradients are
            still ``weight``'s (``--precision bf16``). Default: ``None`` (``weight`` is read).

    Returns:
        torch.Tensor: ``(B, D)`` means (float32 for a bfloat16 ``lookup``).

    Raises:
        ValueError: ids, offsets or squares of the wrong shape, type or order.
        IndexError: ids outside the table, on the CPU (CUDA ids are not checked: that would
            wait for the GPU on every call).
        Unavailable: ``deterministic=True`` on CUDA with neither Triton nor torch's
            deterministic mode (a ``RuntimeError``).
    """
    ids = _int_ids(ids)
    _check_table(weight, squares, lookup)
    exact = resolve_deterministic(deterministic, weight)
    if offsets is None:
        if ids.dim() != 2:
            raise ValueError(
                "ids must be a (batch, length) tensor, or 1-D with offsets. "
                f"Received: ids.shape={tuple(ids.shape)}, offsets=None"
            )
        return _BagMean.apply(weight, squares, ids, None, exact, mask_zero, sparse, lookup)
    if mask_zero:
        raise ValueError("mask_zero applies to dense (batch, length) ids, whose padding is id "
                         "0; ragged bags hold no padding. Received: mask_zero=True with offsets")
    offsets = offsets.to(torch.int64).contiguous()
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
    return _BagMean.apply(weight, squares, ids, offsets, exact, False, sparse, lookup)


def embedding_gather(weight: torch.Tensor, ids: torch.Tensor, *,
                     squares: torch.Tensor | None = None,
                     deterministic: bool | None = None) -> torch.Tensor:
    """``weight[ids]`` (Keras's ``Embedding``) whose backward can also deliver the squares.

    Args:
        weight (torch.Tensor): ``(V, D)`` embedding table.
        ids (torch.Tensor): integer ids of any shape ``S``.
        squares (torch.Tensor | None): as for :func:`embedding_bag_mean`. Default: ``None``.
        deterministic (bool | None): as for :func:`embedding_bag_mean`. Default: ``None``.

    Returns:
        torch.Tensor: ``S + (D,)`` rows.
    """
    _check_table(weight, squares)
    return _Gather.apply(weight, squares, _int_ids(ids),
                         resolve_deterministic(deterministic, weight))


class MeanEmbedding(nn.Module):
    """``Embedding`` + ``GlobalAveragePooling1D``: ``(B, T)`` ids to ``(B, D)`` means.

    The table is the parameter ``embeddings``, named like the Keras weight.  With
    ``squares`` the module also owns ``occurrence_squares``, the table-shaped parameter
    whose gradient is the per-occurrence squared sum (see the module docstring); it holds
    no weights, so it is left out of ``state_dict()``.  With ``precision="bf16"`` the forward
    reads the buffer ``lookup`` (not in ``state_dict()`` either), the table rounded to
    bfloat16 (:meth:`lookup_table`); the table, its gradient and the sums stay float32.

    Args:
        num_embeddings (int): vocabulary size V.
        embedding_dim (int): width D.
        deterministic (bool | None): see :func:`embedding_bag_mean`. Default: ``None``.
        squares (bool): own and fill ``occurrence_squares``. Default: ``True``.
        mask_zero (bool): id 0 is padding, left out of each mean (see
            :func:`embedding_bag_mean`). Default: ``False``.
        sparse (bool): sparse gradients of the touched rows (see
            :func:`embedding_bag_mean`); the attribute ``sparse`` can be switched between
            steps. Default: ``False``.
        precision (str): ``"float32"``, or ``"bf16"`` for the bfloat16 lookup copy (see
            above; ``docs/precision.md``). Default: ``"float32"``.

    Raises:
        ValueError: an unknown ``precision``.
    """

    SINK = "occurrence_squares"
    lookup: torch.Tensor | None

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 deterministic: bool | None = None, squares: bool = True,
                 mask_zero: bool = False, sparse: bool = False,
                 precision: str = "float32") -> None:
        if precision not in LOOKUP_DTYPES:
            raise ValueError(f"precision must be one of {', '.join(LOOKUP_DTYPES)}. Received: "
                             f"precision={precision!r}; float32 is exact, bf16 is for CUDA.")
        super().__init__()
        self.mask_zero, self.sparse = mask_zero, sparse
        self.embeddings = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        sink = nn.Parameter(torch.zeros(num_embeddings, embedding_dim)) if squares else None
        self.register_parameter(self.SINK, sink)
        self.deterministic = deterministic
        nn.init.uniform_(self.embeddings, -0.05, 0.05)
        dtype = LOOKUP_DTYPES[precision]
        self.register_buffer("lookup", None if dtype is None else torch.empty(
            num_embeddings, embedding_dim, dtype=dtype), persistent=False)
        self._rounded_from: tuple[int, int] | None = None  # the table's (address, version)

    def lookup_table(self) -> torch.Tensor | None:
        """The bfloat16 copy (``None`` in float32 mode), rounded again (to nearest even) once
        the table has moved or changed in place: a step of :mod:`embeddings.optim`, a load."""
        if self.lookup is None:  # float32: every forward of training and evaluation
            return None
        state = (self.embeddings.data_ptr(), self.embeddings._version)
        if state != self._rounded_from:
            self.lookup.copy_(self.embeddings.detach())
            self._rounded_from = state
        return self.lookup

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        return embedding_bag_mean(self.embeddings, ids, offsets,
                                  squares=getattr(self, self.SINK),
                                  deterministic=self.deterministic, mask_zero=self.mask_zero,
                                  sparse=self.sparse, lookup=self.lookup_table())

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str,
                            keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination.pop(prefix + self.SINK, None)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              local_metadata: dict[str, Any], strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        if prefix + self.SINK in missing_keys:
            missing_keys.remove(prefix + self.SINK)


def square_sinks(module: nn.Module) -> dict[torch.Tensor, torch.Tensor]:
    """``{table: occurrence_squares}`` for every :class:`MeanEmbedding` inside ``module``:
    what an optimizer needs to find each table's per-occurrence squared gradient."""
    return {m.embeddings: getattr(m, m.SINK) for m in module.modules()
            if isinstance(m, MeanEmbedding) and getattr(m, m.SINK) is not None}
