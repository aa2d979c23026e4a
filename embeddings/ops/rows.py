"""The sparse backward: the table rows a batch touches and their gradient sums.

A large table's dense gradient is mostly zeros: a batch of ``B * T`` ids names a fraction
of its ``V`` rows.  :func:`row_sums` lists the touched rows and sums their occurrence
gradients (and squares) without a ``(V, D)`` table, in the order of the dense backward,
so the values are its rows bit for bit; :func:`sparse_rows` hands them to autograd as the
coalesced sparse gradient ``nn.Embedding(sparse=True)`` gives.
"""

from __future__ import annotations

import torch

from embeddings.ops.dispatch import kernels_for


def row_sums(rows: torch.Tensor, squared: torch.Tensor | None, ids: torch.Tensor,
             offsets: torch.Tensor | None, count: int, *, squares: bool, deterministic: bool,
             mask_zero: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The bag mean's backward for the touched rows only: the ``(R,)`` rows of the
    ``count``-row table that the ids name, increasing, with their ``(R, D)`` sums (and
    squared sums), never a ``(count, D)`` table.

    Each id is replaced by its place among the touched rows and the same scatter as the
    dense backward runs on an ``R``-row table: every row sees the same additions in the same
    order, so the sums equal the dense backward's rows bit for bit.  Under ``mask_zero`` the
    padding keeps place 0 (skipped by the scatter) and is then left out.

    Args:
        rows (torch.Tensor): ``(B, D)`` gradient of each bag's occurrences.
        squared (torch.Tensor | None): ``(B, D)`` their squares, or ``None``.
        ids (torch.Tensor): ``(B, T)`` dense ids, or ``(N,)`` with ``offsets``.
        offsets (torch.Tensor | None): ``(B,)`` bag starts of ragged ids, else ``None``.
        count (int): rows of the table V.
        squares (bool): compute the squared sums too.
        deterministic (bool): reproducible sums on CUDA.
        mask_zero (bool): dense ids only: id 0 is masked padding. Default: ``False``.

    Returns:
        tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: the rows, the sums and the
        squared sums.
    """
    kernels = kernels_for(rows, ids, offsets)
    touched, local = kernels.touched_rows(ids, count, mask_zero)
    sums, sums_sq = kernels.bag_scatter(rows, squared, local, offsets, len(touched),
                                        squares=squares, deterministic=deterministic,
                                        mask_zero=mask_zero)
    if mask_zero:  # place 0 is the padding, listed first whether it occurs or not
        return touched[1:], sums[1:], None if sums_sq is None else sums_sq[1:]
    return touched, sums, sums_sq


def sparse_rows(rows: torch.Tensor, values: torch.Tensor, count: int) -> torch.Tensor:
    """``(R, D)`` values of the increasing ``(R,)`` rows as a coalesced sparse ``(count, D)``
    gradient (the layout ``nn.Embedding(sparse=True)`` gives)."""
    return torch.sparse_coo_tensor(rows[None], values, (count, values.shape[1]),
                                   is_coalesced=True,  # (R,) + (R, D) -> (V, D)
                                   check_invariants=False)  # increasing rows by construction
