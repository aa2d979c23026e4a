"""KerasAdam against Keras's update written out in NumPy float32."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from embeddings.model import SentimentClassifier, binary_crossentropy_from_logits, keras_init_
from embeddings.ops import square_sinks
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


def test_sink_gradient_replaces_the_squared_gradient(kernel_path: str) -> None:
    p0 = np.zeros(3, dtype=np.float32)
    g = np.array([0.2, -0.1, 0.0], dtype=np.float32)
    sq = np.array([0.03, 0.01, 0.0], dtype=np.float32)  # sum of squares of two occurrences
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    sink = torch.nn.Parameter(torch.zeros(3))
    opt = KerasAdam([param, sink], squares={param: sink})
    assert [list(group["params"]) for group in opt.param_groups] == [[param]]  # sink left out
    param.grad = torch.from_numpy(g)
    sink.grad = torch.from_numpy(sq)
    opt.step()
    assert np.array_equal(param.detach().numpy(), keras_adam_numpy(p0, [g], [sq]))
    assert torch.equal(sink, torch.zeros(3))  # a sink is never updated
    opt.zero_grad()
    assert param.grad is None and sink.grad is None


def _batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randint(0, 40, (16, 12), generator=generator),
             torch.randint(0, 2, (16,), generator=generator)) for _ in range(steps)]


def _train(model: SentimentClassifier, opt: KerasAdam,
           batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for ids, labels in batches:
        opt.zero_grad()
        binary_crossentropy_from_logits(model(ids), labels).backward()
        opt.step()


def _fresh() -> tuple[SentimentClassifier, KerasAdam]:
    model = SentimentClassifier(40, 8, 5)
    keras_init_(model, 1)
    return model, KerasAdam(model.parameters(), lr=0.01, squares=square_sinks(model))


@pytest.mark.parametrize("restore_optimizer", [True, False])
def test_saved_and_reloaded_training_continues_bit_for_bit(kernel_path: str,
                                                           restore_optimizer: bool) -> None:
    """Model and optimizer saved after 3 steps, loaded into fresh objects, 4 more steps:
    the weights equal an uninterrupted 7-step run's bit for bit.  Negative twin: without
    the optimizer's state (moments and iterations) the run does not continue the same."""
    batches = _batches(7)
    model, opt = _fresh()
    _train(model, opt, batches)

    first, first_opt = _fresh()
    _train(first, first_opt, batches[:3])
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": first_opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # tensors and plain types only
    resumed, resumed_opt = _fresh()
    resumed.load_state_dict(saved["model"])
    if restore_optimizer:
        resumed_opt.load_state_dict(saved["optimizer"])
        assert resumed_opt.iterations == 3
    _train(resumed, resumed_opt, batches[3:])

    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 resumed.state_dict().values(), strict=True))
    assert same is restore_optimizer


def test_a_state_dict_without_iterations_is_refused() -> None:
    _, opt = _fresh()
    state = opt.state_dict()
    del state["iterations"]
    with pytest.raises(ValueError, match="no 'iterations'"):
        opt.load_state_dict(state)


@pytest.mark.parametrize(("kwargs", "name"), [({"lr": 0}, "lr"), ({"beta_1": 1.0}, "beta_1"),
                                             ({"beta_2": -0.1}, "beta_2"),
                                             ({"epsilon": -1}, "epsilon")])
def test_bad_hyperparameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must.*Received: {name}="):
        KerasAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_torch_dynamo_is_loaded_only_by_whoever_compiles() -> None:
    """torch.optim.Optimizer's methods import torch._dynamo at their first call (0.75 s of
    a tutorial run); KerasAdam's skip that wrapper while dynamo is not loaded, and go
    through it (which marks the wrapped function), with the same results, once something
    has loaded dynamo."""
    code = """
import json, sys, torch
from embeddings.optim import KerasAdam
def run():
    p = torch.nn.Parameter(torch.arange(4.0)); opt = KerasAdam([p], lr=0.1)
    for _ in range(2):
        p.grad = torch.ones(4); opt.step(); opt.zero_grad()
    state = opt.state_dict(); opt.load_state_dict(state)
    return p.tolist(), state["iterations"]
def guarded():
    return [hasattr(getattr(torch.optim.Optimizer, name).__wrapped__, "__dynamo_disable")
            for name in ("zero_grad", "state_dict", "load_state_dict", "add_param_group")]
plain = run(); before = ["torch._dynamo" in sys.modules, guarded()]
import torch._dynamo
print(json.dumps([before, run() == plain, guarded()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == [[False, [False] * 4], True, [True] * 4]
