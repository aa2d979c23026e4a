"""The pure-torch formulation of the kernels: any device, any float dtype.

It defines the float32 operation order the compiled kernels keep (TensorFlow's):
the dense mean sums four interleaved lanes, then a tail (:func:`tf_order_sum`), the backward
accumulates occurrences in order like ``unsorted_segment_sum``, and Adam is Keras's
formula with a correctly rounded square root (section 7).  It runs wherever neither
the C kernels (CPU) nor Triton (CUDA) can, and is what the tests compare them with; a
bfloat16 table (``--precision bf16``'s lookup copy) is one of those cases on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LANES = 4  # TensorFlow's interleaved accumulators for the sum over positions
_LANES_FROM = 16  # shorter sums run in one accumulator


def lane_body(length: int) -> int:
    """How many of ``length`` positions TensorFlow's CPU sum spreads over its four lanes:
    the largest multiple of 4 when ``length`` is at least 16, else none."""
    return length // _LANES * _LANES if length >= _LANES_FROM else 0


def tf_order_sum(rows: torch.Tensor) -> torch.Tensor:
    """Sum over dim 1 of ``rows`` in TensorFlow's CPU summation order (Eigen's reduction
    of a middle axis whose inner axis is a whole number of packets, e.g. D = 8, 16 or 32).

    Lane ``r`` sums positions ``t = r mod 4`` of the first :func:`lane_body` positions,
    from 0, ``t`` increasing; the lanes combine as ``((a0 + a1) + a2) + a3``; then the
    remaining positions (all of them below 16 positions) are added one at a time.

    Args:
        rows (torch.Tensor): ``(B, T, D)`` float tensor.

    Returns:
        torch.Tensor: ``(B, D)`` sums.
    """
    batch, length, dim = rows.shape
    body = lane_body(length)
    lanes = rows[:, :body].reshape(batch, -1, _LANES, dim)  # (B, T, D) -> (B, T/4, 4, D)
    acc = rows.new_zeros(batch, _LANES, dim)  # each lane sums from 0, as in TensorFlow
    for k in range(lanes.shape[1]):
        acc += lanes[:, k]
    total = ((acc[:, 0] + acc[:, 1]) + acc[:, 2]) + acc[:, 3]  # (B, D)
    for t in range(body, length):
        total = total + rows[:, t]
    return total


def tf_order_mean(rows: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``(B, T, D)`` ``rows``: :func:`tf_order_sum` divided by ``T``."""
    return tf_order_sum(rows) / rows.shape[1]


def sum_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a bag mean of ``weight``'s rows accumulates and returns in: the table's,
    but at least float32, so a bfloat16 table's rows are widened before they are added."""
    return torch.promote_types(weight.dtype, torch.float32)


def check_ids(ids: torch.Tensor, rows: int) -> None:
    """Raise the error for CPU ids outside a ``rows``-row table, if any are (ids on a GPU
    are not checked: reading the answer would wait for the GPU).

    Raises:
        IndexError: an id below 0 or at least ``rows``.
    """
    if ids.numel() == 0 or ids.device.type != "cpu":
        return
    low, high = torch.aminmax(ids)
    if low < 0 or high >= rows:
        raise IndexError(f"ids must lie in [0, {rows}) for a table of {rows} rows. "
                         f"Received: ids from {int(low)} to {int(high)}")


def bag_of(lengths: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bag index of each occurrence, from the ``(B,)`` bag lengths."""
    return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)


def bag_lengths(ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` lengths of ragged bags: ``(N,)`` ids cut at ``(B,)`` offsets."""
    return torch.diff(offsets, append=offsets.new_tensor([ids.numel()]))


def bag_mean(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor | None,
             mask_zero: bool = False) -> torch.Tensor:
    """Dense ``(B, T)`` bags in TensorFlow's order (:func:`tf_order_sum`), or ragged
    ``(N,)`` ids cut at ``(B,)`` offsets summed in id order; ``(B, D)`` means (an empty
    ragged bag gives zeros).  With ``mask_zero`` (dense only) id 0 is padding: it adds
    nothing and each bag is divided by its count of other ids, as ``Embedding(mask_zero=True)``
    + ``GlobalAveragePooling1D`` compute it (a bag of padding only gives 0 / 0, NaN).  The
    rows are widened to :func:`sum_dtype` before they are added (bfloat16 sums in float32).

    Raises:
        IndexError: a CPU id outside the table.
    """
    check_ids(ids, weight.shape[0])
    dtype = sum_dtype(weight)
    if offsets is None:
        rows = F.embedding(ids, weight).to(dtype)  # (B, T) -> (B, T, D)
        if not mask_zero:
            return tf_order_mean(rows)
        keep = (ids != 0)[:, :, None]  # (B, T, 1)
        counts = keep.sum(1).to(dtype)  # (B, 1)
        return tf_order_sum(torch.where(keep, rows, torch.zeros_like(rows))) / counts
    lengths = bag_lengths(ids, offsets)
    counts = lengths.clamp(min=1).to(dtype)[:, None]  # (B, 1)
    sums = torch.zeros(len(offsets), weight.shape[1], dtype=dtype, device=weight.device)
    sums.index_add_(0, bag_of(lengths), F.embedding(ids, weight).to(dtype))  # (N, D) -> (B, D)
    return sums / counts


def unpadded(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense ``(B, T)`` ids without their padding (id 0), as ragged bags: the ``(N,)`` other
    ids in order and the ``(B,)`` offsets where each bag starts."""
    keep = ids != 0
    counts = keep.sum(1)
    return ids[keep], torch.cumsum(counts, 0) - counts


def bag_scatter(rows: torch.Tensor, squared: torch.Tensor | None, ids: torch.Tensor,
                offsets: torch.Tensor | None, count: int, *, squares: bool,
                deterministic: bool, mask_zero: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The bag mean's backward: ``(count, D)`` sums of ``rows[b]`` over every occurrence of
    each id in bag ``b``, in occurrence order, and (with ``squares``) of ``squared[b]``, or
    ``rows[b] ** 2`` when ``squared`` is ``None``; ``mask_zero`` (dense ids) passes id 0
    over, as the masked mean's gradient is 0 there.  ``index_add_`` is reproducible on the
    CPU; on CUDA it is when ``torch.use_deterministic_algorithms(True)`` is on, which
    :func:`embeddings.ops.bag.resolve_deterministic` requires for ``deterministic``."""
    del deterministic  # torch's own global mode decides, checked by the caller
    if mask_zero:
        ids, offsets = unpadded(ids)
    if offsets is None:
        length = ids.shape[1]
        per_occurrence = torch.arange(ids.numel(), device=ids.device) // length
    else:
        per_occurrence = bag_of(bag_lengths(ids, offsets))
    flat = ids.reshape(-1)
    dim = rows.shape[1]
    parts = [rows]
    if squares:
        parts.append(rows * rows if squared is None else squared)
    sources = torch.cat(parts, dim=1)[per_occurrence]  # (B, kD) -> (N, kD): a row per occurrence
    sums = torch.zeros(count, sources.shape[1], dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, flat, sources)  # (N, kD) -> (V, kD)
    return sums[:, :dim], (sums[:, dim:] if squares else None)


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, alpha: float, c1: float, c2: float,
                epsilon: float) -> None:
    """In place: ``m += (g - m) c1``, ``v += (g2 - v) c2``, ``p -= m alpha / (sqrt(v) + eps)``,
    with the scalars as 0-dim tensors of the parameter's dtype and ``g2`` being ``grad_sq``
    or ``grad ** 2``.  The square root goes through float64, which rounds it correctly like
    ``tf.sqrt`` (CPU ``torch.sqrt`` in float32 is off by one ulp on some inputs)."""
    def scalar(x: float) -> torch.Tensor:
        return torch.tensor(x, dtype=param.dtype, device=param.device)

    g2 = grad * grad if grad_sq is None else grad_sq
    with torch.no_grad():
        m.add_((grad - m) * scalar(c1))
        v.add_((g2 - v) * scalar(c2))
        root = torch.sqrt(v.double()).to(v.dtype)
        param.sub_((m * scalar(alpha)) / (root + scalar(epsilon)))


def touched_rows(ids: torch.Tensor, count: int, pad_first: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(R,)`` rows of a ``count``-row table that ``ids`` name, increasing, and each
    id's position among them (``ids``' shape); with ``pad_first`` row 0 is listed first
    whether it occurs or not (masked padding keeps position 0)."""
    del count  # the rows come from the ids alone here
    flat = ids.reshape(-1)
    if pad_first:
        flat = torch.cat([flat.new_zeros(1), flat])  # 0 is the smallest id: listed first
    rows, local = torch.unique(flat, sorted=True, return_inverse=True)
    return rows, local[1:].view(ids.shape) if pad_first else local.view(ids.shape)


def adam_rows(param: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor,
              grad_sq: torch.Tensor | None, m: torch.Tensor, v: torch.Tensor, alpha: float,
              c1: float, c2: float, epsilon: float, every_row: bool) -> None:
    """Keras's Adam on a ``(V, D)`` table from the ``(R, D)`` sums of its increasing ``(R,)``
    ``rows``: with ``every_row`` the dense update of the gradient those sums stand for (zero
    elsewhere), built here as a dense table; else the update of those rows only."""
    with torch.no_grad():
        if every_row:
            def dense(values: torch.Tensor) -> torch.Tensor:
                return torch.zeros_like(param).index_copy_(0, rows, values)  # (R, D) -> (V, D)

            adam_update(param, dense(grad), None if grad_sq is None else dense(grad_sq), m, v,
                        alpha, c1, c2, epsilon)
            return
        p_rows, m_rows, v_rows = param[rows], m[rows], v[rows]  # (V, D) -> (R, D) copies
        adam_update(p_rows, grad, grad_sq, m_rows, v_rows, alpha, c1, c2, epsilon)
        for table, part in ((param, p_rows), (m, m_rows), (v, v_rows)):
            table.index_copy_(0, rows, part)
