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
Triton or torch kernel for the tensors' device (:mod:`embeddings.ops.dispatch`).
``torch.optim.Adam`` cannot express this: it adds epsilon after bias correction and
squares the summed gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from embeddings.ops import kernels_for


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

    Raises:
        ValueError: a hyper-parameter out of range.

    ``state_dict()`` holds everything a resumed run needs: the moments, the
    hyper-parameters and ``iterations`` (Keras's step counter).
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
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive. Received: lr={lr}")
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must lie in [0, 1). Received: {name}={beta}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be non-negative. Received: epsilon={epsilon}")
        self._sinks = {id(table): sink for table, sink in (squares or {}).items()}
        sinks = {id(sink) for sink in self._sinks.values()}
        given: list[Any] = list(params)
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in sinks]}
                  if isinstance(g, dict) else g for g in given
                  if isinstance(g, dict) or id(g) not in sinks]
        super().__init__(groups, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
        self.iterations = 0  # Keras's `optimizer.iterations`: completed steps

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients, the squared sums' sinks included."""
        super().zero_grad(set_to_none)
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
                adam_update(p, p.grad, sink.grad if sink is not None else None, state["m"],
                            state["v"], scalars)
        self.iterations = step

    def state_dict(self) -> dict[str, Any]:
        """The moments and hyper-parameters (torch's layout), plus ``iterations``."""
        state = super().state_dict()
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
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "iterations"})
        self.iterations = int(state_dict["iterations"])
