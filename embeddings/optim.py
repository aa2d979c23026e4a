"""Adam as Keras 3 computes it on TensorFlow, step for step in float32.

For every parameter, with ``t`` the 1-based step (``PARITY.md`` section 7)::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)     float32 scalars
    m <- m + (g - m) * c1                                   c1 = float32(1 - beta_1)
    v <- v + (g2 - v) * c2                                  c2 = float32(1 - beta_2)
    p <- p - (m * alpha) / (sqrt(v) + epsilon)

where ``g2`` is ``g * g`` for dense weights but, for an embedding table whose
gradient TensorFlow delivers per token occurrence, the sum of the squared
occurrence gradients (``param.grad_sq``, set by :mod:`embeddings.ops`).  Square
roots go through float64 and back, which rounds them correctly like ``tf.sqrt``
(CPU ``torch.sqrt`` in float32 is off by one ulp on some inputs).
``torch.optim.Adam`` cannot express this: it adds epsilon after bias
correction and squares the summed gradient.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from embeddings import kernels


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x.double()).to(x.dtype)


class KerasAdam(torch.optim.Optimizer):
    """Keras 3's ``Adam`` with its defaults and TensorFlow's sparse second moment.

    Args:
        params (Iterable[torch.nn.Parameter]): parameters to optimize.
        lr (float): learning rate. Default: ``1e-3``.
        beta_1 (float): first-moment decay. Default: ``0.9``.
        beta_2 (float): second-moment decay. Default: ``0.999``.
        epsilon (float): added to ``sqrt(v)`` before bias correction. Default: ``1e-7``.

    Raises:
        ValueError: a hyper-parameter out of range.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive. Received: lr={lr}")
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must lie in [0, 1). Received: {name}={beta}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be non-negative. Received: epsilon={epsilon}")
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
        self.iterations = 0  # Keras's `optimizer.iterations`: completed steps

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients, the per-occurrence squared sums included."""
        super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad_sq = None

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """Apply one Adam update to every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("KerasAdam.step takes no closure. Received: closure=" + repr(closure))
        step = self.iterations + 1
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            # Float32 scalars, computed once per step on the CPU (0-dim CPU tensors also
            # combine with CUDA tensors); the compiled path takes them as exact floats.
            f32 = torch.float32
            t = torch.tensor(step, dtype=f32)
            beta_1_power = torch.tensor(group["beta_1"], dtype=f32) ** t
            beta_2_power = torch.tensor(group["beta_2"], dtype=f32) ** t
            lr = torch.tensor(group["lr"], dtype=f32)
            alpha = lr * _sqrt(1 - beta_2_power) / (1 - beta_1_power)
            c1 = torch.tensor(1 - group["beta_1"], dtype=f32)
            c2 = torch.tensor(1 - group["beta_2"], dtype=f32)
            epsilon = torch.tensor(group["epsilon"], dtype=f32)
            scalars = (alpha.item(), c1.item(), c2.item(), epsilon.item())
            for p in params:
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                m, v, g = state["m"], state["v"], p.grad
                g2 = getattr(p, "grad_sq", None)
                if kernels.usable(p, g, m, v, *([] if g2 is None else [g2])):
                    kernels.adam_update(p, g, g2, m, v, *scalars)
                    continue
                if g2 is None:
                    g2 = g * g
                m.add_((g - m) * c1)
                v.add_((g2 - v) * c2)
                p.sub_((m * alpha) / (_sqrt(v) + epsilon))
        self.iterations = step
