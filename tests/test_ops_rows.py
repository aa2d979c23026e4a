"""The sparse backward (``embeddings/ops/rows.py``): the touched rows and their sums."""

from __future__ import annotations

import pytest
import torch

from embeddings.ops import dispatch, embedding_bag_mean, row_sums


def _table(vocab: int, dim: int) -> torch.Tensor:
    """Rows of very different scales, so that any change of summation order shows."""
    return torch.randn(vocab, dim) * 10.0 ** torch.randint(-3, 3, (vocab, 1))


def _gradients(ids: torch.Tensor, offsets: torch.Tensor | None, mask_zero: bool,
               sparse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The table's and the sink's gradients of ``(means * upstream).sum()``."""
    generator = torch.Generator().manual_seed(5)
    batch = ids.shape[0] if offsets is None else len(offsets)
    upstream = torch.randn(batch, 3, generator=generator) * 10.0 ** torch.randint(
        -3, 3, (batch, 1), generator=generator)
    leaf = torch.zeros(30, 3, requires_grad=True)
    sink = torch.zeros(30, 3, requires_grad=True)
    embedding_bag_mean(leaf, ids, offsets, squares=sink, mask_zero=mask_zero,
                       sparse=sparse).backward(upstream)
    assert leaf.grad is not None and sink.grad is not None
    return leaf.grad, sink.grad


@pytest.mark.parametrize(("ids", "offsets", "mask_zero"), [
    (torch.randint(0, 12, (40, 17)), None, False),  # 17: four lanes and a tail
    (torch.randint(0, 12, (40, 17)), None, True),  # padding: id 0 left out
    (torch.randint(1, 30, (40, 5)), None, True),  # masked, with no padding at all
    (torch.randint(0, 30, (90,)), torch.tensor([0, 0, 7, 50, 50, 61]), False),  # ragged
])
def test_sparse_gradients_are_the_dense_ones_touched_rows(
        bag_path: str, ids: torch.Tensor, offsets: torch.Tensor | None,
        mask_zero: bool) -> None:
    dense, dense_sq = _gradients(ids, offsets, mask_zero, sparse=False)
    sparse, sparse_sq = _gradients(ids, offsets, mask_zero, sparse=True)
    assert sparse.is_sparse and sparse_sq.is_sparse
    touched = torch.unique(ids[ids != 0] if mask_zero else ids)
    for got, expected in ((sparse, dense), (sparse_sq, dense_sq)):
        assert torch.equal(got._indices()[0], touched)  # increasing, padding left out
        assert torch.equal(got.to_dense(), expected)  # bit for bit


def test_row_sums_keep_occurrence_order_and_reversing_it_breaks_them(bag_path: str) -> None:
    """Negative twin: the same additions in reverse occurrence order give other sums, so
    the equality above holds because the order is kept."""
    ids = torch.tensor([[4, 9], [4, 1], [4, 1]])
    per_bag = torch.tensor([[1e8, 1.0], [-1e8, 2.0], [1.0, 4.0]])  # scales that expose order
    rows, sums, squares = row_sums(per_bag, None, ids, None, 10, squares=True,
                                   deterministic=True)
    assert rows.tolist() == [1, 4, 9]
    # row 4 sees 1e8, -1e8, 1 in that order: (1e8 - 1e8) + 1 = 1; reversed, 1 - 1e8 rounds
    # to -1e8 and the sum ends at 0
    assert sums[1].tolist() == [1.0, 7.0]
    assert sums[0].tolist() == [-1e8, 6.0]  # -1e8 + 1 rounds back to -1e8
    bag_of = torch.arange(6) // 2
    reversed_order = torch.zeros(10, 2).index_add_(0, ids.flatten().flip(0),
                                                   per_bag[bag_of.flip(0)])
    assert reversed_order[4].tolist() == [0.0, 7.0]
    assert squares is not None
    assert torch.equal(squares[2], per_bag[0] * per_bag[0])  # row 9: one occurrence


@pytest.mark.parametrize(("ids", "pad_first", "rows", "local"), [
    ([[5, 2, 5], [0, 7, 2]], False, [0, 2, 5, 7], [[2, 1, 2], [0, 3, 1]]),
    ([[3, 1], [1, 1]], True, [0, 1, 3], [[2, 1], [1, 1]]),  # 0 listed though absent
    ([[0, 8]], True, [0, 8], [[0, 1]]),  # 0 present: listed once
])
def test_touched_rows_list_each_row_once_in_order(bag_path: str, ids: list[list[int]],
                                                  pad_first: bool, rows: list[int],
                                                  local: list[list[int]]) -> None:
    kernels = dispatch.kernels_for(torch.zeros(1))
    got_rows, got_local = kernels.touched_rows(torch.tensor(ids), 9, pad_first)
    assert got_rows.tolist() == rows
    assert got_local.tolist() == local
