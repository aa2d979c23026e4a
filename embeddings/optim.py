"""Adam as Keras 3 computes it on TensorFlow, step for step in float32: one update function
for the native optimizer (:class:`KerasAdam`) and the Keras one
(:class:`embeddings.keras_model.TFAdam`).

For every parameter, with ``t`` the 1-based step (``PARITY.md`` section 7)::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)     float32 scalars
    m <- m + (g - m) * c1                                   c1 = float32(1 - beta_1)
    v <- v + (g2 - v) * c2                                  c2 = float32(1 - beta_2)
    p <- p - (m * alpha) / (sqrt(v) + epsilon)

where ``g2`` is ``g * g`` for dense weights but, for an embedding table whose gradient
TensorFlow delivers per token occurrence, the sum of the squared occurrence gradients:
the gradient of the table's ``occurrence_squares`` sink (:mod:`embeddings.ops.bag`).
Square roots are correctly rounded like ``tf.sqrt``.  :func:`adam_update` runs the C,
Triton or torch kernel for the tensors' device (:mod:`embeddings.ops.dispatch`), then
advances the parameter's version counter as an in-place torch op would (the C and Triton
kernels write through its address): that is how a ``--precision bf16`` table's lookup copy
knows to follow it (:meth:`embeddings.ops.MeanEmbedding.lookup_table`); the moments and
the update stay float32.
``torch.optim.Adam`` cannot express this: it adds epsilon after bias correction and
squares the summed gradient.

A table with a sparse gradient (``MeanEmbedding(sparse=True)``: the sums of the rows a
batch touched, :func:`embeddings.ops.row_sums`) is updated by :func:`adam_rows_update`
straight from those sums, in one sweep, with no dense gradient table:

* ``table_update="dense"`` (the default, ``--table-update dense``): Keras's dense update.
  Every row decays ``m`` and ``v`` and moves every step, the untouched ones with a zero
  gradient, so the parameters and moments equal those of the dense gradient bit for bit;
* ``table_update="rows"`` (``--table-update rows``): only the touched rows are updated,
  with the same formula and step count, as ``torch.optim.SparseAdam`` and TensorFlow
  Addons' ``LazyAdam`` do; untouched rows keep their value and moments.  Not Keras's
  rule: a rare token's row no longer drifts on its momentum between its occurrences.

:func:`make_optimizer` builds the optimizer training uses and gives each table the
gradient layout that pays (:func:`sparse_pays`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn
from torch.autograd.graph import increment_version

from embeddings.config import TABLE_UPDATES, RunConfig
from embeddings.ops import MeanEmbedding, kernels_for, square_sinks

# Table size (V * D elements) from which the fused sparse step is used for the exact update
# on the CPU (see sparse_pays).
SPARSE_MIN_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class AdamScalars:
    """The float32 scalars of one Adam step (exact float32 values held as Python floats)."""

    alpha: float
    c1: float
    c2: float
    epsilon: float


@functools.lru_cache(maxsize=8)
def adam_scalars(lr: float, beta_1: float, beta_2: float, epsilon: float,
                 step: int) -> AdamScalars:
    """Keras's step-``step`` scalars, computed in float32 as TensorFlow does: the
    hyper-parameters and ``t`` cast to float32, scalar ``pow``, a correctly rounded root.

    Args:
        lr (float): learning rate.
        beta_1 (float): first-moment decay.
        beta_2 (float): second-moment decay.
        epsilon (float): added to ``sqrt(v)`` before bias correction.
        step (int): the 1-based step ``t`` (Keras's ``iterations + 1``).

    Cached: Keras's optimizer asks once per variable, for the same step.
    """
    f32 = torch.float32
    t = torch.tensor(step, dtype=f32)
    beta_1_power = torch.tensor(beta_1, dtype=f32) ** t
    beta_2_power = torch.tensor(beta_2, dtype=f32) ** t
    root = torch.sqrt((1 - beta_2_power).double()).to(f32)
    alpha = torch.tensor(lr, dtype=f32) * root / (1 - beta_1_power)
    return AdamScalars(alpha.item(), torch.tensor(1 - beta_1, dtype=f32).item(),
                       torch.tensor(1 - beta_2, dtype=f32).item(),
                       torch.tensor(epsilon, dtype=f32).item())


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, scalars: AdamScalars) -> None:
    """One in-place Keras Adam update of ``param`` and its moments ``m`` and ``v``.

    Args:
        param (torch.Tensor): the weight, updated in place.
        grad (torch.Tensor): its gradient.
        grad_sq (torch.Tensor | None): the per-occurrence squared sum for an embedding
            table; ``None`` uses ``grad * grad``.
        m (torch.Tensor): first moment, updated in place.
        v (torch.Tensor): second moment, updated in place.
        scalars (AdamScalars): the step's scalars from :func:`adam_scalars`.
    """
    kernels_for(param, grad, grad_sq, m, v).adam_update(
        param, grad, grad_sq, m, v, scalars.alpha, scalars.c1, scalars.c2, scalars.epsilon)
    increment_version(param)  # written in place, maybe through its address


def adam_rows_update(param: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor,
                     grad_sq: torch.Tensor | None, m: torch.Tensor, v: torch.Tensor,
                     scalars: AdamScalars, *, every_row: bool) -> None:
    """One in-place Keras Adam update of a ``(V, D)`` table from the sums of its touched rows.

    Args:
        param (torch.Tensor): ``(V, D)`` table, updated in place.
        rows (torch.Tensor): ``(R,)`` int64 touched rows, increasing.
        grad (torch.Tensor): ``(R, D)`` their gradient sums.
        grad_sq (torch.Tensor | None): ``(R, D)`` their per-occurrence squared sums;
            ``None`` uses ``grad * grad``.
        m (torch.Tensor): ``(V, D)`` first moment, updated in place.
        v (torch.Tensor): ``(V, D)`` second moment, updated in place.
        scalars (AdamScalars): the step's scalars from :func:`adam_scalars`.
        every_row (bool): Keras's dense update, every row with a zero gradient where none is
            given (bit for bit :func:`adam_update` of the dense gradient); else the touched
            rows only.
    """
    kernels_for(param, rows, grad, grad_sq, m, v).adam_rows(
        param, rows, grad, grad_sq, m, v, scalars.alpha, scalars.c1, scalars.c2,
        scalars.epsilon, every_row)
    increment_version(param)  # written in place, maybe through its address


def _rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(R,)`` increasing rows of a sparse gradient and their ``(R, D)`` values.

    Autograd stores one backward's coalesced gradient without its coalesced flag, so the
    rows are checked instead (one pass over ``R`` ids, where ``coalesce()`` would sort
    them); gradients accumulated over several backward calls are coalesced (summed).
    """
    rows = grad._indices()[0]
    if not grad.is_coalesced() and not bool((rows[1:] > rows[:-1]).all()):
        grad = grad.coalesce()
        rows = grad._indices()[0]
    return rows, grad._values().contiguous()


def _touched(grad: torch.Tensor, sink_grad: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The rows, gradient sums and squared sums of a sparse table gradient and its sink's.

    Raises:
        ValueError: the sink's gradient is dense or lists other rows.
    """
    rows, values = _rows(grad)
    if sink_grad is None:
        return rows, values, None
    if not sink_grad.is_sparse:
        raise ValueError("a table with a sparse gradient needs a sparse sink gradient: build "
                         "both in one backward (embedding_bag_mean(..., sparse=True)). "
                         f"Received: sink gradient layout {sink_grad.layout}")
    sink_rows, squares = _rows(sink_grad)
    if sink_rows.data_ptr() != rows.data_ptr() and not torch.equal(sink_rows, rows):
        raise ValueError("the sink's sparse gradient must list the table's touched rows: "
                         f"build both in one backward. Received: {len(sink_rows)} and "
                         f"{len(rows)} rows")
    return rows, values, squares


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _dynamo_free(method: _Method) -> _Method:
    """``torch.optim.Optimizer``'s ``method`` without its ``torch._dynamo.disable`` wrapper
    while ``torch._dynamo`` is not loaded, when nothing can be compiling it.

    The wrapper imports ``torch._dynamo`` at its first call: 0.75 s and about 170 MB of
    a tutorial run, for a guard that has nothing to guard until something imports
    dynamo (``torch.compile`` does, and then the wrapped method is called as before).
    """
    plain = getattr(method, "__wrapped__", method)

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return (method if "torch._dynamo" in sys.modules else plain)(*args, **kwargs)

    return call  # type: ignore[return-value]


class KerasAdam(torch.optim.Optimizer):
    """Keras 3's ``Adam`` with its defaults and TensorFlow's sparse second moment.

    Args:
        params (Iterable[torch.Tensor] | Iterable[dict]): parameters (or param groups) to
            optimize; the sinks named in ``squares`` are left out of them.
        lr (float): learning rate. Default: ``1e-3``.
        beta_1 (float): first-moment decay. Default: ``0.9``.
        beta_2 (float): second-moment decay. Default: ``0.999``.
        epsilon (float): added to ``sqrt(v)`` before bias correction. Default: ``1e-7``.
        squares (Mapping[torch.Tensor, torch.Tensor] | None): ``{table: sink}``: the
            parameter whose gradient is each table's per-occurrence squared sum
            (:func:`embeddings.ops.square_sinks`). Default: ``None``.
        table_update (str): for a parameter with a sparse gradient, ``"dense"`` (Keras's
            update of every row) or ``"rows"`` (the touched rows only; see the module
            docstring). Dense gradients always get the dense update. Default: ``"dense"``.

    Raises:
        ValueError: a hyper-parameter out of range.

    ``state_dict()`` holds everything a resumed run needs: the moments (dense in both
    modes), the hyper-parameters with ``table_update`` and ``iterations`` (Keras's step
    counter, which also drives the row-wise update's bias correction).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        squares: Mapping[torch.Tensor, torch.Tensor] | None = None,
        table_update: str = "dense",
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive. Received: lr={lr}")
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must lie in [0, 1). Received: {name}={beta}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be non-negative. Received: epsilon={epsilon}")
        if table_update not in TABLE_UPDATES:
            raise ValueError(f"table_update must be one of {', '.join(TABLE_UPDATES)}. "
                             f"Received: table_update={table_update!r}")
        self._sinks = {id(table): sink for table, sink in (squares or {}).items()}
        sinks = {id(sink) for sink in self._sinks.values()}
        given: list[Any] = list(params)
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in sinks]}
                  if isinstance(g, dict) else g for g in given
                  if isinstance(g, dict) or id(g) not in sinks]
        super().__init__(groups, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                                      table_update=table_update))
        self.iterations = 0  # Keras's `optimizer.iterations`: completed steps

    add_param_group = _dynamo_free(torch.optim.Optimizer.add_param_group)
    _zero_grad = _dynamo_free(torch.optim.Optimizer.zero_grad)
    _state_dict = _dynamo_free(torch.optim.Optimizer.state_dict)
    _load_state_dict = _dynamo_free(torch.optim.Optimizer.load_state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients, the squared sums' sinks included."""
        self._zero_grad(set_to_none)
        for sink in self._sinks.values():
            if set_to_none:
                sink.grad = None
            elif sink.grad is not None:
                sink.grad.zero_()

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """Apply one Adam update to every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("KerasAdam.step takes no closure. Received: closure=" + repr(closure))
        step = self.iterations + 1
        for group in self.param_groups:
            scalars = adam_scalars(group["lr"], group["beta_1"], group["beta_2"],
                                   group["epsilon"], step)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                sink = self._sinks.get(id(p))
                sink_grad = sink.grad if sink is not None else None
                if p.grad.is_sparse:  # the touched rows' sums: no dense gradient
                    rows, grad, grad_sq = _touched(p.grad, sink_grad)
                    adam_rows_update(p, rows, grad, grad_sq, state["m"], state["v"], scalars,
                                     every_row=group["table_update"] == "dense")
                else:
                    adam_update(p, p.grad, sink_grad, state["m"], state["v"], scalars)
        self.iterations = step

    def state_dict(self) -> dict[str, Any]:
        """The moments and hyper-parameters (torch's layout), plus ``iterations``."""
        state = self._state_dict()
        state["iterations"] = self.iterations
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, ``iterations`` included.

        Raises:
            ValueError: ``state_dict`` has no ``iterations`` (not a :class:`KerasAdam` state).
        """
        if "iterations" not in state_dict:
            raise ValueError("state_dict has no 'iterations': it was not saved by "
                             f"KerasAdam. Received: keys={sorted(state_dict)}")
        self._load_state_dict({k: v for k, v in state_dict.items() if k != "iterations"})
        self.iterations = int(state_dict["iterations"])


def sparse_pays(table: torch.Tensor) -> bool:
    """Whether the exact update of ``table`` is faster from sparse gradients (the fused
    step) than from a dense gradient: CPU tables of at least ``SPARSE_MIN_ELEMENTS``
    elements (measured, ``docs/large-tables.md``); CUDA keeps the dense gradient (not
    measured on a GPU yet)."""
    return table.device.type == "cpu" and table.numel() >= SPARSE_MIN_ELEMENTS


def make_optimizer(model: nn.Module, config: RunConfig) -> KerasAdam:
    """The optimizer ``--backend torch`` trains ``model`` with, as ``config`` says.

    Each :class:`~embeddings.ops.MeanEmbedding` of ``model`` is switched to sparse
    gradients when ``--table-update rows`` needs its touched rows, or when
    :func:`sparse_pays` (the same values as the dense gradient, so the same training);
    call this after the model is on its device.

    Args:
        model (nn.Module): the model, on its training device.
        config (RunConfig): the run's settings (``learning_rate``, ``table_update``).

    Returns:
        KerasAdam: over every parameter, with the tables' squared-gradient sinks.
    """
    rows = config.train.table_update == "rows"
    for module in model.modules():
        if isinstance(module, MeanEmbedding):
            module.sparse = rows or sparse_pays(module.embeddings)
    return KerasAdam(model.parameters(), lr=config.train.learning_rate,
                     squares=square_sinks(model), table_update=config.train.table_update)
