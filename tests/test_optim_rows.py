"""KerasAdam from sparse table gradients: the fused exact step and ``table_update="rows"``."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from embeddings import optim
from embeddings.config import RunConfig
from embeddings.model import SentimentClassifier, binary_crossentropy_from_logits, keras_init_
from embeddings.ops import square_sinks
from embeddings.optim import KerasAdam, adam_rows_update, adam_scalars, adam_update, make_optimizer


def _batches(steps: int, vocab: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randint(0, vocab // 2, (16, 12), generator=generator),  # rows left untouched
             torch.randint(0, 2, (16,), generator=generator)) for _ in range(steps)]


def _model(sparse: bool, mask_padding: bool = False) -> SentimentClassifier:
    model = SentimentClassifier(40, 8, 5, mask_padding=mask_padding)
    keras_init_(model, 1)
    model.embedding.sparse = sparse
    return model


def _train(model: SentimentClassifier, opt: KerasAdam,
           batches: list[tuple[torch.Tensor, torch.Tensor]], backwards: int = 1) -> None:
    for ids, labels in batches:
        opt.zero_grad()
        for _ in range(backwards):
            binary_crossentropy_from_logits(model(ids), labels).backward()
        opt.step()


def _moments(opt: KerasAdam) -> list[torch.Tensor]:
    return [t for state in opt.state.values() for t in (state["m"], state["v"])]


@pytest.mark.parametrize(("mask_padding", "backwards"), [(False, 1), (True, 1), (False, 2)])
def test_the_fused_step_equals_the_dense_path_bit_for_bit(bag_path: str, mask_padding: bool,
                                                          backwards: int) -> None:
    """Sparse gradients and the fused sweep against dense gradient tables and
    ``adam_update``: the same parameters and moments after every step (also with two
    backward calls per step, whose sparse gradients autograd concatenates)."""
    results = []
    for sparse in (False, True):
        model = _model(sparse, mask_padding)
        opt = KerasAdam(model.parameters(), lr=0.01, squares=square_sinks(model))
        _train(model, opt, _batches(4), backwards)
        assert model.embedding.embeddings.grad.is_sparse is sparse
        results.append([*model.state_dict().values(), *_moments(opt)])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_the_fused_sweep_needs_the_squared_sums(bag_path: str) -> None:
    """Negative twin: fed the squares of the summed gradient instead of the per-occurrence
    squared sums, the sweep no longer gives the dense path's table."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(6, 3, generator=generator)
    rows = torch.tensor([1, 4])
    grad = torch.randn(2, 3, generator=generator)
    squares = grad * grad + torch.rand(2, 3, generator=generator)  # several occurrences
    scalars = adam_scalars(0.01, 0.9, 0.999, 1e-7, 1)
    dense = torch.zeros(6, 3).index_copy_(0, rows, grad)
    dense_sq = torch.zeros(6, 3).index_copy_(0, rows, squares)
    expected, m, v = table.clone(), torch.zeros(6, 3), torch.zeros(6, 3)
    adam_update(expected, dense, dense_sq, m, v, scalars)
    for given, same in ((squares, True), (None, False)):
        p, m, v = table.clone(), torch.zeros(6, 3), torch.zeros(6, 3)
        adam_rows_update(p, rows, grad, given, m, v, scalars, every_row=True)
        assert torch.equal(p, expected) is same


def test_rows_update_only_touched_rows_with_the_global_step(bag_path: str) -> None:
    """Hand-worked: row 1 is touched at steps 1 and 3, row 2 at step 2, row 0 never; each
    touched row takes Keras's update with the step's own bias correction, its moments
    untouched in between."""
    f = np.float32
    p0 = np.array([[0.5, -0.5], [0.25, 0.125], [-1.0, 2.0]], dtype=f)
    table = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    sink = torch.nn.Parameter(torch.zeros(3, 2))
    opt = KerasAdam([table, sink], lr=0.1, squares={table: sink}, table_update="rows")
    touches = [(1, [0.5, -0.25], [0.5, 0.125]), (2, [1.0, 2.0], [3.0, 4.0]),
               (1, [-0.5, 0.75], [0.25, 0.75])]
    for row, g, g2 in touches:
        def sparse(values: list[float], at: int = row) -> torch.Tensor:
            return torch.sparse_coo_tensor(torch.tensor([[at]]), torch.tensor([values]), (3, 2),
                                           check_invariants=True)

        table.grad, sink.grad = sparse(g), sparse(g2)
        opt.step()
    expected, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, (row, g, g2) in enumerate(touches, start=1):
        alpha = f(0.1) * f(np.sqrt(np.float64(f(1) - f(0.999) ** f(t)))) / (f(1) - f(0.9) ** f(t))
        m[row] = m[row] + (np.array(g, f) - m[row]) * f(1 - 0.9)
        v[row] = v[row] + (np.array(g2, f) - v[row]) * f(1 - 0.999)
        expected[row] = expected[row] - (m[row] * alpha) / (
            np.sqrt(v[row].astype(np.float64)).astype(f) + f(1e-7))
    assert np.array_equal(table.detach().numpy(), expected)
    assert np.array_equal(opt.state[table]["m"].numpy(), m)
    assert table.detach()[0].tolist() == [0.5, -0.5]  # never touched: never moved


def test_rows_state_saves_and_reloads_bit_for_bit(kernel_path: str) -> None:
    """Two steps, saved, loaded into a fresh optimizer built for the dense update, two more:
    the row-wise mode and moments come back with the state, so the run equals an
    uninterrupted one.  Negative twin: a fresh optimizer without the state differs."""
    batches = _batches(4)
    model = _model(sparse=True)
    _train(model, KerasAdam(model.parameters(), lr=0.01, squares=square_sinks(model),
                            table_update="rows"), batches)
    outcomes = []
    for restore in (True, False):
        first = _model(sparse=True)
        first_opt = KerasAdam(first.parameters(), lr=0.01, squares=square_sinks(first),
                              table_update="rows")
        _train(first, first_opt, batches[:2])
        buffer = io.BytesIO()
        torch.save({"model": first.state_dict(), "optimizer": first_opt.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        resumed = _model(sparse=True)
        resumed.load_state_dict(saved["model"])
        resumed_opt = KerasAdam(resumed.parameters(), lr=0.01, squares=square_sinks(resumed))
        if restore:
            resumed_opt.load_state_dict(saved["optimizer"])
            assert resumed_opt.param_groups[0]["table_update"] == "rows"
        _train(resumed, resumed_opt, batches[2:])
        outcomes.append(all(torch.equal(a, b) for a, b in zip(
            model.state_dict().values(), resumed.state_dict().values(), strict=True)))
    assert outcomes == [True, False]


def test_a_row_left_out_of_a_batch_drifts_on_its_momentum_only_under_dense(
        kernel_path: str) -> None:
    """Rows 10-19 are touched by the first batch and not by the second: Keras's dense update
    moves them again on their momentum; the row-wise update leaves them as they were."""
    first, second = _batches(2)
    second = (second[0] % 10, second[1])  # ids 0-9 only
    for mode, drifts in (("dense", True), ("rows", False)):
        model = _model(sparse=True)
        opt = KerasAdam(model.parameters(), lr=0.01, squares=square_sinks(model),
                        table_update=mode)
        _train(model, opt, [first])
        after_first = model.embedding.embeddings.detach().clone()
        _train(model, opt, [second])
        left_out = model.embedding.embeddings.detach()[10:20]
        assert bool((left_out != after_first[10:20]).all()) is drifts
        assert torch.equal(left_out, after_first[10:20]) is not drifts


def test_a_bad_table_update_is_named() -> None:
    with pytest.raises(ValueError, match="table_update must be one of dense, rows. "
                                         "Received: table_update='lazy'"):
        KerasAdam([torch.nn.Parameter(torch.zeros(1))], table_update="lazy")


def test_a_sparse_table_gradient_with_a_dense_sink_gradient_is_refused() -> None:
    table, sink = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3, 2))
    opt = KerasAdam([table, sink], squares={table: sink})
    table.grad = torch.sparse_coo_tensor(torch.tensor([[1]]), torch.ones(1, 2), (3, 2),
                                         check_invariants=True)
    sink.grad = torch.ones(3, 2)
    with pytest.raises(ValueError, match="needs a sparse sink gradient"):
        opt.step()


@pytest.mark.parametrize(("table_update", "threshold", "sparse"), [
    ("dense", optim.SPARSE_MIN_ELEMENTS, False),  # 40 x 8: the dense gradient pays
    ("dense", 40 * 8, True),  # from the threshold on: the fused step
    ("rows", optim.SPARSE_MIN_ELEMENTS, True),  # rows needs the touched rows at any size
])
def test_make_optimizer_chooses_the_tables_gradient_layout(
        monkeypatch: pytest.MonkeyPatch, table_update: str, threshold: int,
        sparse: bool) -> None:
    monkeypatch.setattr(optim, "SPARSE_MIN_ELEMENTS", threshold)
    model = _model(sparse=not sparse)
    config = RunConfig.from_preset("tutorial", learning_rate=0.02, table_update=table_update)
    opt = make_optimizer(model, config)
    assert model.embedding.sparse is sparse
    (group,) = opt.param_groups
    assert group["table_update"] == table_update and group["lr"] == 0.02
    sink = model.embedding.occurrence_squares
    assert all(p is not sink for p in group["params"])  # the sink is no weight
