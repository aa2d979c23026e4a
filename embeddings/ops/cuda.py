"""The CUDA kernels of the hot loop and of Adam, in Triton.

:mod:`embeddings.ops.dispatch` imports this module only for CUDA tensors and only when
Triton imports (PyTorch's CUDA wheels for Linux bring it); otherwise the torch formulation
(:mod:`embeddings.ops.reference`) runs.
With ``TRITON_INTERPRET=1`` set before this module is first imported, the same kernels
run on CPU tensors through Triton's interpreter, which is how the tests check them on a
machine without a GPU.

Forward.  One program per (bag, block of columns) walks the bag's ids and adds the
rows.  Dense bags keep TensorFlow's four interleaved lanes and tail
(``reference.tf_order_sum``), ragged bags one running sum in order, so the means equal
the CPU path's bit for bit.  A bfloat16 table (``--precision bf16``'s lookup copy) has
each row widened to float32 as it is loaded: the sums and the means are float32, in the
same order, equal to the reference's bit for bit.

Backward, two modes:

* fast (default): one program per (bag, block of columns) adds the bag's
  per-occurrence row and its square to every id of the bag with relaxed atomic adds.
  Float32 addition is not associative, so the low bits of a row that several bags
  touch depend on the order the atomics land in: not reproducible.
* deterministic: the ids are sorted (stable) so that each table row's occurrences lie
  together; fixed-size chunks of ``CHUNK`` occurrences are summed as tiles, then each
  row adds up its chunks ``ROWS`` at a time.  Every sum has a fixed shape and order, so
  the result is the same on every run, and no row waits on a long sequential chain
  however often its id occurs.

Adam (``adam_update``, ``adam_rows``) lives in :mod:`embeddings.ops.cuda_adam`; the rows
a sparse backward touches are listed by ``torch.unique`` (``touched_rows``, the
reference's).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from embeddings.ops.cuda_adam import adam_rows as adam_rows
from embeddings.ops.cuda_adam import adam_update as adam_update
from embeddings.ops.reference import bag_lengths, bag_of, lane_body, sum_dtype, unpadded
from embeddings.ops.reference import touched_rows as touched_rows

CHUNK = 32  # occurrences per partial sum in the deterministic backward
ROWS = 32  # partial sums added per step when a row combines its chunks
MAX_BLOCK_D = 64  # columns per program; wider tables use several column blocks


def accepts(*tensors: torch.Tensor | None) -> bool:
    """Whether these tensors are on a CUDA device (Triton then runs them)."""
    return all(t is None or t.device.type == "cuda" for t in tensors)


@triton.jit
def _columns(dim, BLOCK_D: tl.constexpr):
    """This program's block of columns (grid axis 1) and which of them lie in the table."""
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    return cols, cols < dim


@triton.jit
def _bag_span(starts, length, RAGGED: tl.constexpr):
    """This program's bag and the ``[start, end)`` of its ids: ragged bags between two
    ``starts``, dense ones ``length`` ids each."""
    bag = tl.program_id(0).to(tl.int64)
    if RAGGED:
        start = tl.load(starts + bag)
        end = tl.load(starts + bag + 1)
    else:
        start = bag * length
        end = start + length
    return bag, start, end


@triton.jit
def _row(weight, ids, k, dim, cols, in_dim, ACC: tl.constexpr, MASK: tl.constexpr):
    """Row ``ids[k]`` of the table (this program's columns), widened to the sums' dtype
    ``ACC``; ``+0.0`` for padding under ``MASK``, which then adds nothing, like the C
    kernel's skip."""
    index = tl.load(ids + k)
    row = tl.load(weight + index * dim + cols, mask=in_dim, other=0.0).to(ACC)
    if MASK:
        row = tl.where(index != 0, row, 0.0)
    return row


# An int argument equal to 1 would otherwise be specialized into a constant, which has no
# .to(); the float32 division is div_rn, IEEE's correctly rounded one like the CPU's ("/" on
# CUDA may round differently), so that the means stay equal bit for bit.
@triton.jit(do_not_specialize=["length", "body"])
def _bag_mean_forward(weight, ids, starts, counts, out, length, body, dim,
                      RAGGED: tl.constexpr, MASK: tl.constexpr, BLOCK_D: tl.constexpr):
    bag, start, end = _bag_span(starts, length, RAGGED)
    cols, in_dim = _columns(dim, BLOCK_D)
    ACC: tl.constexpr = out.dtype.element_ty  # the table's dtype, at least float32
    if RAGGED:
        acc = tl.zeros([BLOCK_D], dtype=ACC)
        for k in range(start, end):
            acc += _row(weight, ids, k, dim, cols, in_dim, ACC, False)
        total = acc
        divisor = tl.maximum(end - start, 1).to(ACC)  # an empty bag gives 0
    else:
        # TensorFlow's order (reference.tf_order_sum): four interleaved lanes over the first
        # `body` positions, r = t mod 4, from 0, t increasing; then the tail, one at a time.
        acc0 = tl.zeros([BLOCK_D], dtype=ACC)
        acc1 = tl.zeros([BLOCK_D], dtype=ACC)
        acc2 = tl.zeros([BLOCK_D], dtype=ACC)
        acc3 = tl.zeros([BLOCK_D], dtype=ACC)
        for k in range(start, start + body, 4):
            acc0 += _row(weight, ids, k, dim, cols, in_dim, ACC, MASK)
            acc1 += _row(weight, ids, k + 1, dim, cols, in_dim, ACC, MASK)
            acc2 += _row(weight, ids, k + 2, dim, cols, in_dim, ACC, MASK)
            acc3 += _row(weight, ids, k + 3, dim, cols, in_dim, ACC, MASK)
        total = ((acc0 + acc1) + acc2) + acc3
        for k in range(start + body, end):
            total += _row(weight, ids, k, dim, cols, in_dim, ACC, MASK)
        if MASK:
            divisor = tl.load(counts + bag).to(ACC)  # 0 gives NaN, as TF
        else:
            divisor = length.to(ACC)
    if ACC == tl.float32:
        mean = tl.math.div_rn(total, divisor)
    else:  # float64 division is always correctly rounded
        mean = total / divisor
    tl.store(out + bag * dim + cols, mean, mask=in_dim)


@triton.jit
def _bag_scatter_atomic(rows, squares, ids, starts, sums_out, squares_out, length, dim,
                        RAGGED: tl.constexpr, SQUARES: tl.constexpr, BLOCK_D: tl.constexpr):
    bag, start, end = _bag_span(starts, length, RAGGED)
    cols, in_dim = _columns(dim, BLOCK_D)
    row = tl.load(rows + bag * dim + cols, mask=in_dim, other=0.0)
    if SQUARES:
        square = tl.load(squares + bag * dim + cols, mask=in_dim, other=0.0)
    for k in range(start, end):
        target = tl.load(ids + k) * dim + cols
        tl.atomic_add(sums_out + target, row, mask=in_dim, sem="relaxed")
        if SQUARES:
            tl.atomic_add(squares_out + target, square, mask=in_dim, sem="relaxed")


@triton.jit
def _chunk_sums(rows, squares, bag_of_sorted, chunk_start, chunk_end, part_sums,
                part_squares, dim, SQUARES: tl.constexpr, CHUNK: tl.constexpr,
                BLOCK_D: tl.constexpr):
    chunk = tl.program_id(0).to(tl.int64)
    cols, in_dim = _columns(dim, BLOCK_D)
    start = tl.load(chunk_start + chunk)
    end = tl.load(chunk_end + chunk)
    pos = start + tl.arange(0, CHUNK)
    valid = pos < end
    bags = tl.load(bag_of_sorted + pos, mask=valid, other=0)  # (CHUNK,)
    where = bags[:, None] * dim + cols[None, :]  # (CHUNK, BLOCK_D)
    keep = valid[:, None] & in_dim[None, :]
    tile = tl.load(rows + where, mask=keep, other=0.0)
    tl.store(part_sums + chunk * dim + cols, tl.sum(tile, axis=0), mask=in_dim)
    if SQUARES:
        tile_sq = tl.load(squares + where, mask=keep, other=0.0)
        tl.store(part_squares + chunk * dim + cols, tl.sum(tile_sq, axis=0), mask=in_dim)


@triton.jit
def _row_sums(part_sums, part_squares, first_chunk, chunk_count, row_ids, sums_out,
              squares_out, dim, SQUARES: tl.constexpr, ROWS: tl.constexpr,
              BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols, in_dim = _columns(dim, BLOCK_D)
    first = tl.load(first_chunk + row)
    end = first + tl.load(chunk_count + row)
    acc = tl.zeros([BLOCK_D], dtype=sums_out.dtype.element_ty)
    acc_sq = tl.zeros([BLOCK_D], dtype=sums_out.dtype.element_ty)
    for k in range(first, end, ROWS):
        pos = k + tl.arange(0, ROWS)
        where = pos[:, None] * dim + cols[None, :]
        keep = (pos < end)[:, None] & in_dim[None, :]
        acc += tl.sum(tl.load(part_sums + where, mask=keep, other=0.0), axis=0)
        if SQUARES:
            acc_sq += tl.sum(tl.load(part_squares + where, mask=keep, other=0.0), axis=0)
    target = tl.load(row_ids + row) * dim + cols
    tl.store(sums_out + target, acc, mask=in_dim)
    if SQUARES:
        tl.store(squares_out + target, acc_sq, mask=in_dim)


def _block_d(dim: int) -> int:
    return min(triton.next_power_of_2(dim), MAX_BLOCK_D)


def _warps(block: int) -> int:
    """One warp per 32 columns of a row-wise kernel (a 16-column block still needs one)."""
    return max(1, block // 32)


def bag_mean(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor | None,
             mask_zero: bool = False) -> torch.Tensor:
    """Means of dense ``(B, T)`` bags (id 0 left out with ``mask_zero``), or of ragged 1-D
    ids cut at ``(B,)`` ``offsets``.

    Returns:
        torch.Tensor: ``(B, D)`` in :func:`~embeddings.ops.reference.sum_dtype` (float32 for
        a bfloat16 table), equal bit for bit to the CPU path's.
    """
    dim = weight.shape[1]
    batch = ids.shape[0] if offsets is None else offsets.shape[0]
    out = torch.empty(batch, dim, dtype=sum_dtype(weight), device=weight.device)
    if batch == 0:
        return out
    block = _block_d(dim)
    grid = (batch, triton.cdiv(dim, block))
    if offsets is None:
        length = ids.shape[1]
        counts = (ids != 0).sum(1) if mask_zero else ids  # read only under MASK
        _bag_mean_forward[grid](weight, ids, ids, counts, out, length, lane_body(length), dim,
                                RAGGED=False, MASK=mask_zero, BLOCK_D=block,
                                num_warps=_warps(block))
    else:
        starts = torch.cat([offsets, offsets.new_tensor([ids.numel()])])  # (B + 1,)
        _bag_mean_forward[grid](weight, ids, starts, ids, out, 0, 0, dim, RAGGED=True,
                                MASK=False, BLOCK_D=block, num_warps=_warps(block))
    return out


def bag_scatter(rows: torch.Tensor, squared: torch.Tensor | None, ids: torch.Tensor,
                offsets: torch.Tensor | None, count: int, *, squares: bool,
                deterministic: bool, mask_zero: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The bag mean's backward: ``(count, D)`` sums of ``rows[b]`` over every occurrence of
    each id in bag ``b``, and (with ``squares``) of ``squared[b]`` (``rows[b] ** 2`` when
    ``None``).

    Args:
        rows (torch.Tensor): ``(B, D)`` gradient row of each occurrence of bag ``b``.
        squared (torch.Tensor | None): ``(B, D)`` its elementwise square, or ``None``.
        ids (torch.Tensor): ``(B, T)`` dense ids, or ``(N,)`` with ``offsets``.
        offsets (torch.Tensor | None): ``(B,)`` bag starts of ragged ids, else ``None``.
        count (int): rows of the table.
        squares (bool): whether to compute the squared sums.
        deterministic (bool): sorted, reproducible sums instead of atomic adds.
        mask_zero (bool): dense ids only: pass id 0 (masked padding) over.

    Returns:
        tuple[torch.Tensor, torch.Tensor | None]: the sums and the squared sums.
    """
    if mask_zero:
        ids, offsets = unpadded(ids)  # the masked padding's occurrences, left out
    dim = rows.shape[1]
    sums = torch.zeros(count, dim, dtype=rows.dtype, device=rows.device)
    sums_sq = torch.zeros_like(sums) if squares else None
    if squares and squared is None:
        squared = rows * rows
    # Without squares the kernels never read these two; any valid pointer will do.
    squared_in = squared if squared is not None else rows
    squares_out = sums_sq if sums_sq is not None else sums
    if ids.numel() == 0:
        return sums, sums_sq
    block = _block_d(dim)
    columns = triton.cdiv(dim, block)
    flat = ids.reshape(-1)
    if not deterministic:
        if offsets is None:
            _bag_scatter_atomic[(rows.shape[0], columns)](
                rows, squared_in, flat, flat, sums, squares_out, ids.shape[1], dim,
                RAGGED=False, SQUARES=squares, BLOCK_D=block, num_warps=_warps(block))
        else:
            starts = torch.cat([offsets, offsets.new_tensor([flat.numel()])])  # (B + 1,)
            _bag_scatter_atomic[(rows.shape[0], columns)](
                rows, squared_in, flat, starts, sums, squares_out, 0, dim, RAGGED=True,
                SQUARES=squares, BLOCK_D=block, num_warps=_warps(block))
        return sums, sums_sq
    sorted_ids, order = torch.sort(flat, stable=True)  # each row's occurrences together
    if offsets is None:
        bag_of_sorted = order // ids.shape[1]
    else:
        bag_of_sorted = bag_of(bag_lengths(flat, offsets))[order]
    row_ids, per_row = torch.unique_consecutive(sorted_ids, return_counts=True)  # (R,)
    row_start = torch.cumsum(per_row, 0) - per_row
    chunks_per_row = (per_row + CHUNK - 1) // CHUNK
    first_chunk = torch.cumsum(chunks_per_row, 0) - chunks_per_row
    chunk_row = torch.repeat_interleave(torch.arange(len(row_ids), device=flat.device),
                                        chunks_per_row)  # (C,): the row of each chunk
    within = torch.arange(len(chunk_row), device=flat.device) - first_chunk[chunk_row]
    chunk_start = row_start[chunk_row] + within * CHUNK
    chunk_end = torch.minimum(chunk_start + CHUNK, (row_start + per_row)[chunk_row])
    part_sums = torch.empty(len(chunk_row), dim, dtype=rows.dtype, device=rows.device)
    part_squares = torch.empty_like(part_sums) if squares else part_sums
    _chunk_sums[(len(chunk_row), columns)](rows, squared_in, bag_of_sorted, chunk_start,
                                           chunk_end, part_sums, part_squares, dim,
                                           SQUARES=squares, CHUNK=CHUNK, BLOCK_D=block)
    _row_sums[(len(row_ids), columns)](part_sums, part_squares, first_chunk, chunks_per_row,
                                       row_ids, sums, squares_out, dim, SQUARES=squares,
                                       ROWS=ROWS, BLOCK_D=block, num_warps=_warps(block))
    return sums, sums_sq
