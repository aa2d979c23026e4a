"""KerasAdam against Keras's update written out in NumPy float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embeddings.optim import KerasAdam


def keras_adam_numpy(p, grads, sq_grads=None, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):  # type: ignore[no-untyped-def]
    """Keras 3 Adam on the TF backend, PARITY.md section 7, in NumPy float32."""
    f = np.float32
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g2 = sq_grads[t - 1] if sq_grads is not None else g * g
        alpha = f(lr) * f(np.sqrt(np.float64(f(1) - f(b2) ** f(t)))) / (f(1) - f(b1) ** f(t))
        m = m + (g - m) * f(1 - b1)
        v = v + (g2 - v) * f(1 - b2)
        p = p - (m * alpha) / (np.sqrt(v.astype(np.float64)).astype(f) + f(eps))
    return p


def test_steps_are_bit_identical_to_the_keras_formula(kernel_path: str) -> None:
    rng = np.random.default_rng(0)
    n = 70_000  # large enough for the compiled path to split the work over threads
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [(rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 0, n)).astype(np.float32)
             for _ in range(20)]
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = KerasAdam([param])
    for g in grads:
        param.grad = torch.from_numpy(g)
        opt.step()
    assert np.array_equal(param.detach().numpy(), keras_adam_numpy(p0, grads))
    assert opt.iterations == 20


def test_torch_adam_is_not_keras_adam() -> None:
    # The negative twin: epsilon placement makes torch.optim.Adam differ from Keras.
    p0 = np.full(4, 0.5, dtype=np.float32)
    g = np.array([1e-6, 1e-4, 1e-2, 1.0], dtype=np.float32)
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = torch.optim.Adam([param], lr=1e-3, eps=1e-7)
    param.grad = torch.from_numpy(g)
    opt.step()
    assert not np.array_equal(param.detach().numpy(), keras_adam_numpy(p0, [g]))


def test_grad_sq_replaces_the_squared_gradient(kernel_path: str) -> None:
    p0 = np.zeros(3, dtype=np.float32)
    g = np.array([0.2, -0.1, 0.0], dtype=np.float32)
    sq = np.array([0.03, 0.01, 0.0], dtype=np.float32)  # sum of squares of two occurrences
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = KerasAdam([param])
    param.grad = torch.from_numpy(g)
    param.grad_sq = torch.from_numpy(sq)
    opt.step()
    assert np.array_equal(param.detach().numpy(), keras_adam_numpy(p0, [g], [sq]))
    opt.zero_grad()
    assert param.grad is None and param.grad_sq is None


@pytest.mark.parametrize(("kwargs", "name"), [({"lr": 0}, "lr"), ({"beta_1": 1.0}, "beta_1"),
                                             ({"beta_2": -0.1}, "beta_2"),
                                             ({"epsilon": -1}, "epsilon")])
def test_bad_hyperparameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must.*Received: {name}="):
        KerasAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
