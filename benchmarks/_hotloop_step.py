"""The hot-loop benchmark's ``step`` phase: forward, backward and optimizer update of a table.

One training step of an embedding table alone, ``ids (B, T) -> (B, D)`` means, the
gradient of ``(means * upstream).sum()``, then the optimizer's update, per implementation:

* ``ours``: :func:`embeddings.ops.embedding_bag_mean` with its squared-gradient sink and
  :class:`~embeddings.optim.KerasAdam`, exact Keras-rule Adam (every row, every step); the
  gradient is sparse, and the update fused with the sweep, where training makes it so
  (:func:`embeddings.optim.sparse_pays`), dense otherwise;
* ``ours_rows``: the same with sparse gradients and ``table_update="rows"`` (the touched
  rows only, ``--table-update rows``);
* ``embeddingbag``: ``F.embedding_bag(mode="mean")`` (``nn.EmbeddingBag``) and
  ``torch.optim.Adam`` on its dense gradient;
* ``embeddingbag_sparse``: the same with ``sparse=True`` and ``torch.optim.SparseAdam``.

Bytes model of a step (``N = B * T`` ids, ``R`` the distinct ids of the batch, float32
values, int64 ids); the forward moves ``N*8 + N*D*4 + B*D*4`` in every case, then:

* ``ours`` with sparse gradients: listing the touched rows ``3*N*8 + 2*V*8``, their sums
  and squared sums ``2*R*D*4``; the sweep reads the table, ``m``, ``v`` and writes them
  back, ``6*V*D*4``, and reads the sums, ``2*R*D*4``;
* ``ours`` with dense gradients: ``N*8`` and two ``(V, D)`` tables written, ``2*V*D*4``;
  the sweep ``8*V*D*4`` (reads table, gradient, squares, ``m``, ``v``; writes three);
* ``ours_rows``: the listing and sums as ``ours`` sparse, then ``8*R*D*4``;
* ``embeddingbag``: ``N*8`` and the dense gradient ``V*D*4``; Adam at least ``7*V*D*4``;
* ``embeddingbag_sparse``: ``N*8`` and one gradient row per id, ``N*D*4``; SparseAdam
  coalesces them (``2*N*D*4``), then at least ``7*R*D*4``.

The bound of a case is its bytes over the copy bandwidth measured in the same run: no
step can be faster than moving its bytes at ``dst.copy_(src)`` speed.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks._hotloop_impls import STEP_MEMORY_TABLES, memory_skip
from benchmarks.common import measure

STEP_IMPLS = ("ours", "ours_rows", "embeddingbag", "embeddingbag_sparse")
LR = 1e-3
EPSILON = 1e-7  # Keras's, for all four


def build_step(impl: str, ids: torch.Tensor, weight: torch.Tensor,
               upstream: torch.Tensor) -> tuple[Callable[[], None], torch.Tensor, bool]:
    """One implementation's training step on a copy of ``weight``.

    Args:
        impl (str): a name from ``STEP_IMPLS``.
        ids (torch.Tensor): ``(B, T)`` int64 ids.
        weight (torch.Tensor): ``(V, D)`` initial table, copied.
        upstream (torch.Tensor): ``(B, D)`` gradient of the means.

    Returns:
        tuple[Callable[[], None], torch.Tensor, bool]: ``step()``, the table it trains, and
        whether its gradient is sparse.

    Raises:
        ValueError: an unknown ``impl``.
    """
    from embeddings.ops import embedding_bag_mean
    from embeddings.optim import KerasAdam, sparse_pays

    leaf = weight.clone().requires_grad_()
    if impl in ("ours", "ours_rows"):
        rows = impl == "ours_rows"
        sparse = rows or sparse_pays(leaf)
        sink = torch.zeros_like(leaf, requires_grad=True)
        ours = KerasAdam([leaf, sink], lr=LR, epsilon=EPSILON, squares={leaf: sink},
                         table_update="rows" if rows else "dense")

        def ours_step() -> None:
            ours.zero_grad()
            embedding_bag_mean(leaf, ids, squares=sink, sparse=sparse).backward(upstream)
            ours.step()

        return ours_step, leaf, sparse
    if impl in ("embeddingbag", "embeddingbag_sparse"):
        sparse = impl == "embeddingbag_sparse"
        stock: torch.optim.Optimizer = (
            torch.optim.SparseAdam([leaf], lr=LR, eps=EPSILON) if sparse
            else torch.optim.Adam([leaf], lr=LR, eps=EPSILON))

        def stock_step() -> None:
            stock.zero_grad()
            F.embedding_bag(ids, leaf, mode="mean", sparse=sparse).backward(upstream)
            stock.step()

        return stock_step, leaf, sparse
    raise ValueError(f"impl must be one of {', '.join(STEP_IMPLS)} for the step phase. "
                     f"Received: impl={impl!r}")


def exact_step(ids: torch.Tensor, weight: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """The table after one step of today's exact path, the yardstick of the checks: dense
    gradient and squared sums, then :func:`embeddings.optim.adam_update`."""
    from embeddings.ops import embedding_bag_mean
    from embeddings.optim import KerasAdam

    leaf = weight.clone().requires_grad_()
    sink = torch.zeros_like(leaf, requires_grad=True)
    optimizer = KerasAdam([leaf, sink], lr=LR, epsilon=EPSILON, squares={leaf: sink})
    embedding_bag_mean(leaf, ids, squares=sink, sparse=False).backward(upstream)
    optimizer.step()
    return leaf.detach()


def step_bytes(impl: str, shape: tuple[int, int, int, int], touched: int,
               sparse: bool) -> int:
    """Bytes one step moves under the model of the module docstring.

    Args:
        impl (str): a name from ``STEP_IMPLS``.
        shape (tuple[int, int, int, int]): ``(B, T, V, D)``.
        touched (int): R, the distinct ids of the batch.
        sparse (bool): ``ours`` runs with sparse gradients.

    Returns:
        int: bytes.
    """
    batch, length, vocab, dim = shape
    n, table, rows = batch * length, vocab * dim * 4, touched * dim * 4
    forward = n * 8 + n * dim * 4 + batch * dim * 4
    listing = 3 * n * 8 + 2 * vocab * 8 + 2 * rows
    rest = {
        "ours": listing + 6 * table + 2 * rows if sparse else n * 8 + 2 * table + 8 * table,
        "ours_rows": listing + 8 * rows,
        "embeddingbag": n * 8 + table + 7 * table,
        "embeddingbag_sparse": n * 8 + n * dim * 4 + 2 * n * dim * 4 + 7 * rows,
    }
    return forward + rest[impl]


def run_step(impl: str, ids: torch.Tensor, weight: torch.Tensor, upstream: torch.Tensor,
             exact: torch.Tensor, touched: int, min_run_time: float, warmup: int
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time one implementation's training step: the first from the initial table, then
    ``warmup`` more, then ``torch.utils.benchmark`` (:func:`benchmarks.common.measure`).

    Returns:
        tuple[dict[str, Any], dict[str, Any]]: the timing with its ``bytes``, or
        ``{"skipped": why}``, and a check: the table after the first step against ``exact``
        (today's exact path from the same start).
    """
    shape = (ids.shape[0], ids.shape[1], weight.shape[0], weight.shape[1])
    skip = memory_skip(impl, shape, ids.device, STEP_MEMORY_TABLES)
    if skip:
        return {"skipped": skip}, {"skipped": skip}
    step, table, sparse = build_step(impl, ids, weight, upstream)
    step()  # the first step, from the initial table
    check = {"weight_max_abs_diff_vs_exact": float((table.detach() - exact).abs().max()),
             "sparse_gradient": sparse}
    timing = measure(step, min_run_time, warmup)
    timing.update(method="timed", bytes=step_bytes(impl, shape, touched, sparse),
                  touched_rows=touched)
    return timing, check


def step_cases(ids: torch.Tensor, weight: torch.Tensor, upstream: torch.Tensor,
               impls: list[str], min_run_time: float, warmup: int
               ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(impl, {"step": timing}, check)`` for each of ``impls`` that has a step phase
    (:func:`run_step`), all against one :func:`exact_step` from the same start."""
    exact = exact_step(ids, weight, upstream)
    touched = int(torch.unique(ids).numel())
    out = []
    for impl in (i for i in impls if i in STEP_IMPLS):
        timing, check = run_step(impl, ids, weight, upstream, exact, touched, min_run_time,
                                 warmup)
        out.append((impl, {"step": timing}, {"phase": "step", **check}))
        gc.collect()
    return out


def step_ratios(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's two ratios per shape, where both cases were measured:
    ``embeddingbag / ours`` and ``embeddingbag_sparse / ours_rows`` (> 1: ours faster)."""
    medians = {(c["shape"], c["impl"]): c["median_s"] for c in cases
               if c["phase"] == "step" and c.get("median_s")}
    out = []
    for shape in dict.fromkeys(c["shape"] for c in cases):
        for impl, baseline in (("ours", "embeddingbag"), ("ours_rows", "embeddingbag_sparse")):
            ours, base = medians.get((shape, impl)), medians.get((shape, baseline))
            if ours and base:
                out.append({"shape": shape, "phase": "step", "impl": impl,
                            "baseline": baseline, "speedup": base / ours})
    return out
