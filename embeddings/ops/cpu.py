"""The CPU kernels of the hot loop and of Adam: C (``kernels.c``) called through ``ctypes``.

They take contiguous CPU tensors (float32 values, int64 ids) and keep the float32
operation order of :mod:`embeddings.ops.reference`, so the two agree bit for bit:
four interleaved lanes and a tail in the dense forward, occurrence order in the backward, and
Keras's Adam with a correctly rounded square root.  :func:`accepts` says whether a
call can run here; :mod:`embeddings.ops.dispatch` falls back to the reference otherwise.
"""

from __future__ import annotations

from pathlib import Path

import torch

from embeddings.native import NativeLibrary
from embeddings.ops.reference import bag_lengths, bag_of, check_ids

LIBRARY = NativeLibrary(Path(__file__).with_name("kernels.c"), {
    "bag_mean_forward": ("pppiiiii", "i"),
    "ragged_mean_forward": ("ppppiiii", "i"),
    "bag_scatter_sums": ("pppppiiii", None),
    "grouped_scatter_sums": ("pppppiiiii", "i"),
    "adam_update": ("pppppiffff", None),
    "touched_rows": ("piiippp", "i"),
    "adam_rows": ("ppppppiiiffffi", None),
})

# Table size (V * D elements) from which the backward groups occurrences by row instead of
# scattering them: once the tables outgrow the caches, writing each row once wins (measured
# here: 8.3 vs 8.8 ms at 100k x 64, 122 vs 163 ms at 1M x 128; 1.4 vs 0.35 ms at 10k x 16).
GROUPED_MIN_ELEMENTS = 1 << 22


def available() -> bool:
    """Whether the C kernels are compiled and loaded (compiling them on the first call)."""
    return LIBRARY.available()


def accepts(*tensors: torch.Tensor | None) -> bool:
    """Whether these tensors can go to the C kernels: contiguous, on the CPU, float32
    values and int64 ids."""
    return all(t is None or (t.device.type == "cpu" and t.is_contiguous()
                             and t.dtype in (torch.float32, torch.int64))
               for t in tensors) and available()


def bag_mean(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor | None,
             mask_zero: bool = False) -> torch.Tensor:
    """Dense ``(B, T)`` bags in TensorFlow's order, or ragged ``(N,)`` ids cut at ``(B,)``
    offsets summed in id order; ``(B, D)`` means (an empty ragged bag gives zeros); with
    ``mask_zero`` (dense only) id 0 is padding, as in :func:`embeddings.ops.reference.bag_mean`.

    Raises:
        IndexError: an id outside the table (found while reading, at no extra pass).
    """
    dim, rows = weight.shape[1], weight.shape[0]
    if offsets is None:
        batch, length = ids.shape
        out = torch.empty(batch, dim, dtype=weight.dtype)
        bad = LIBRARY.call("bag_mean_forward", weight.data_ptr(), ids.data_ptr(),
                           out.data_ptr(), batch, length, dim, rows, int(mask_zero))
    else:
        out = torch.empty(len(offsets), dim, dtype=weight.dtype)
        bad = LIBRARY.call("ragged_mean_forward", weight.data_ptr(), ids.data_ptr(),
                           offsets.data_ptr(), out.data_ptr(), len(offsets), ids.numel(), dim,
                           rows)
    if bad:
        check_ids(ids, rows)
    return out


def bag_scatter(rows: torch.Tensor, squared: torch.Tensor | None, ids: torch.Tensor,
                offsets: torch.Tensor | None, count: int, *, squares: bool,
                deterministic: bool, mask_zero: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The bag mean's backward: ``(count, D)`` sums of ``rows[b]`` over every occurrence of
    each id in bag ``b``, in occurrence order, and (with ``squares``) the same sums of
    ``squared[b]``, or of ``rows[b] ** 2`` when ``squared`` is ``None``; ``mask_zero``
    (dense ids) passes id 0 over.  The CPU sums are always reproducible, so
    ``deterministic`` changes nothing here.

    Raises:
        MemoryError: no room for the grouped sort's ``(count + N)`` int64 working memory.
    """
    del deterministic  # every CPU order is fixed
    if offsets is not None:  # one row per occurrence: the T = 1 case of the dense kernel
        occurrence_bag = bag_of(bag_lengths(ids, offsets))  # (N,)
        rows = rows[occurrence_bag]
        squared = squared[occurrence_bag] if squared is not None else None
        ids = ids.view(-1, 1)
    batch, length = ids.shape
    dim = rows.shape[1]
    grouped = count * dim >= GROUPED_MIN_ELEMENTS
    make = torch.empty if grouped else torch.zeros  # the grouped kernel writes every row
    sums = make(count, dim, dtype=rows.dtype)
    sums_sq = make(count, dim, dtype=rows.dtype) if squares else None
    pointers = (rows.data_ptr(), squared.data_ptr() if squared is not None else None,
                ids.data_ptr(), sums.data_ptr(), sums_sq.data_ptr() if sums_sq is not None
                else None)
    if grouped:
        if LIBRARY.call("grouped_scatter_sums", *pointers, ids.numel(), length, count, dim,
                        int(mask_zero)):
            raise MemoryError(f"no memory to sort {ids.numel()} ids over {count} rows")
    else:
        LIBRARY.call("bag_scatter_sums", *pointers, batch, length, dim, int(mask_zero))
    return sums, sums_sq


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, alpha: float, c1: float, c2: float,
                epsilon: float) -> None:
    """In place: ``m += (g - m) c1``, ``v += (g2 - v) c2``, ``p -= m alpha / (sqrt(v) + eps)``
    in float32, ``g2`` being ``grad_sq`` or ``grad ** 2`` (see ``kernels.c``)."""
    LIBRARY.call("adam_update", param.data_ptr(), grad.data_ptr(),
                 grad_sq.data_ptr() if grad_sq is not None else None, m.data_ptr(),
                 v.data_ptr(), param.numel(), alpha, c1, c2, epsilon)


def touched_rows(ids: torch.Tensor, count: int, pad_first: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(R,)`` rows of a ``count``-row table that ``ids`` name, increasing, and each
    id's position among them (``ids``' shape); with ``pad_first`` row 0 is listed first
    whether it occurs or not.  One pass over the ids and one over a ``(count,)`` scratch
    array: no sort."""
    flat = ids.reshape(-1)
    rows = torch.empty(min(flat.numel(), count) + 1, dtype=torch.int64)
    local = torch.empty_like(flat)
    slot = torch.zeros(count, dtype=torch.int64)  # scratch, alive until the call returns
    listed = LIBRARY.call("touched_rows", flat.data_ptr(), flat.numel(), count, int(pad_first),
                          slot.data_ptr(), rows.data_ptr(), local.data_ptr())
    return rows[:listed], local.view(ids.shape)


def adam_rows(param: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor,
              grad_sq: torch.Tensor | None, m: torch.Tensor, v: torch.Tensor, alpha: float,
              c1: float, c2: float, epsilon: float, every_row: bool) -> None:
    """Keras's Adam on a ``(V, D)`` table from the sums of its increasing ``(R,)`` ``rows``
    (``(R, D)`` ``grad`` and ``grad_sq``): every row with a zero gradient elsewhere
    (``every_row``, bit for bit :func:`adam_update` of the dense gradient), or those rows
    only (see ``kernels.c``)."""
    LIBRARY.call("adam_rows", param.data_ptr(), rows.data_ptr(), grad.data_ptr(),
                 grad_sq.data_ptr() if grad_sq is not None else None, m.data_ptr(),
                 v.data_ptr(), rows.numel(), param.shape[0], param.shape[1], alpha, c1, c2,
                 epsilon, int(every_row))
