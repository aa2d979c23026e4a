"""The CUDA path's Triton kernels: forward bits, both backward modes, the mode switch, Adam.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (the
``cuda_kernels`` fixture); the ``cuda`` tests at the end run compiled on a GPU.
"""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from embeddings import ops
from embeddings.ops import embedding_bag_mean, reference, scatter_occurrences, tf_order_mean
from embeddings.optim import adam_scalars, adam_update
from embeddings.testing import assert_close

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _table(vocab: int, dim: int, device: str = "cpu") -> torch.Tensor:
    """Rows of very different scales, so that any change of summation order shows."""
    scale = 10.0 ** torch.randint(-3, 3, (vocab, 1))
    return (torch.randn(vocab, dim) * scale).to(device)


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(1, 1, 3, 1), (5, 7, 13, 3), (9, 33, 40, 130), (64, 100, 300, 16),
                          (4, 18, 20, 16)])
def test_dense_forward_equals_tensorflow_lane_order_bit_for_bit(
        cuda_kernels: ModuleType, batch: int, length: int, vocab: int, dim: int,
        mask_zero: bool) -> None:
    weight, ids = _table(vocab, dim), torch.randint(1, vocab, (batch, length))
    ids[:, length // 2 + 1:] = 0  # padding after each review
    got = cuda_kernels.bag_mean(weight, ids, None, mask_zero)
    assert torch.equal(got, reference.bag_mean(weight, ids, None, mask_zero))
    if not mask_zero:
        assert torch.equal(got, tf_order_mean(F.embedding(ids, weight)))


def test_ragged_forward_equals_the_in_order_sum_bit_for_bit(cuda_kernels: ModuleType) -> None:
    weight = _table(50, 70)  # two column blocks
    ids = torch.randint(0, 50, (200,))
    offsets = torch.tensor([0, 0, 1, 90, 90, 150])  # empty bags first and inside
    lengths = torch.diff(offsets, append=torch.tensor([200]))
    sums = torch.zeros(6, 70).index_add_(0, reference.bag_of(lengths), weight[ids])
    expected = sums / lengths.clamp(min=1)[:, None].float()
    assert torch.equal(cuda_kernels.bag_mean(weight, ids, offsets), expected)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(1, 1, 3, 2), (7, 9, 11, 65), (64, 100, 3, 16)])
def test_backward_modes_equal_the_occurrence_sums(cuda_kernels: ModuleType, batch: int,
                                                  length: int, vocab: int, dim: int,
                                                  deterministic: bool) -> None:
    # (64, 100, 3): ~2,100 occurrences per id, so many chunks per row and several
    # ROWS-sized steps when a row adds its chunks up.
    ids = torch.randint(0, vocab, (batch, length))
    rows = torch.randn(batch, dim) * 10.0 ** torch.randint(-3, 2, (batch, 1))
    got = cuda_kernels.bag_scatter(rows, rows * rows, ids, None, vocab, squares=True,
                                   deterministic=deterministic)
    with ops.use("reference"):
        expected = scatter_occurrences(rows.repeat_interleave(length, dim=0), ids.reshape(-1),
                                       vocab)
    # float32 sums of up to ~2,100 terms in another order: relative error below
    # 2,100 * 2**-24 ~ 1.3e-4 of the absolute sum; the squares are all positive.
    for a, b in zip(got, expected, strict=True):
        assert_close(a, b, rtol=2e-4, atol=2e-4 * float(rows.abs().max()) ** 2)


@pytest.mark.parametrize("deterministic", [False, True])
def test_ragged_backward_skips_empty_bags(cuda_kernels: ModuleType,
                                          deterministic: bool) -> None:
    ids = torch.tensor([2, 2, 0, 1, 1, 1])
    offsets = torch.tensor([0, 2, 2, 3])  # bag 1 empty
    rows = torch.tensor([[1.0], [100.0], [2.0], [3.0]])
    sums, squares = cuda_kernels.bag_scatter(rows, None, ids, offsets, 4, squares=True,
                                             deterministic=deterministic)
    assert sums.flatten().tolist() == [2.0, 9.0, 2.0, 0.0]
    assert squares is not None and squares.flatten().tolist() == [4.0, 27.0, 2.0, 0.0]
    alone, none = cuda_kernels.bag_scatter(rows, None, ids, offsets, 4, squares=False,
                                           deterministic=deterministic)
    assert none is None and torch.equal(alone, sums)


@pytest.mark.parametrize("with_squares", [False, True])
def test_adam_update_equals_the_reference_bit_for_bit(cuda_kernels: ModuleType,
                                                      with_squares: bool) -> None:
    """Keras's update element by element, as the C kernel and the reference round it."""
    n = 3000  # several programs, the last one partly masked
    g = torch.randn(n) * 10.0 ** torch.randint(-12, 1, (n,))
    g2 = g * g + torch.rand(n) * 1e-6 if with_squares else None
    scalars = adam_scalars(1e-3, 0.9, 0.999, 1e-7, 7)
    results = []
    for path in ("cuda", "reference"):
        torch.manual_seed(0)
        p, m, v = torch.randn(n), torch.randn(n) * 1e-3, torch.rand(n) * 1e-6
        with ops.use(path):
            adam_update(p, g, g2, m, v, scalars)
        results.append((p, m, v))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


class _Spy:
    """Records the ``deterministic`` flag the op hands the Triton backward."""

    def __init__(self, module: ModuleType) -> None:
        self.module, self.flags = module, []  # type: list[bool]
        self.bag_mean = module.bag_mean

    def bag_scatter(self, *args: object, deterministic: bool, **kwargs: object
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.flags.append(deterministic)
        return self.module.bag_scatter(  # type: ignore[no-any-return]
            *args, deterministic=deterministic, **kwargs)


def test_deterministic_flag_reaches_the_backward(cuda_kernels: ModuleType,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(cuda_kernels)
    monkeypatch.setattr(ops.dispatch, "_cuda", lambda: spy)
    weight = torch.randn(5, 2, requires_grad=True)
    ids = torch.tensor([[1, 2, 2]])
    with ops.use("cuda"):
        embedding_bag_mean(weight, ids).sum().backward()
        embedding_bag_mean(weight, ids, deterministic=True).sum().backward()
        embedding_bag_mean(weight, ids.flatten(), torch.tensor([0]), deterministic=True
                           ).sum().backward()
        ops.embedding_gather(weight, ids, deterministic=True).sum().backward()
        monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
        embedding_bag_mean(weight, ids).sum().backward()  # None follows torch's setting
        embedding_bag_mean(weight, ids, deterministic=False).sum().backward()
    assert spy.flags == [False, True, True, True, True, False]


def test_deterministic_gradcheck_in_float64(cuda_kernels: ModuleType) -> None:
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 1, 1, 5], [2, 2, 2, 2], [0, 0, 0, 0]])
    with ops.use("cuda"):
        assert torch.autograd.gradcheck(
            lambda w: embedding_bag_mean(w, ids, deterministic=True), (weight,))


@needs_cuda
def test_cuda_deterministic_backward_is_bitwise_reproducible() -> None:
    if ops.dispatch.cuda_kernels() is None:
        pytest.skip("Triton is not installed: CUDA runs the torch formulation")
    ids = torch.randint(0, 50, (512, 200), device="cuda")  # many collisions per row
    weight = _table(50, 40, "cuda").requires_grad_()
    upstream = torch.randn(512, 40, device="cuda")
    sink = torch.zeros_like(weight, requires_grad=True)
    grads = []
    for _ in range(3):
        weight.grad = sink.grad = None
        (embedding_bag_mean(weight, ids, squares=sink, deterministic=True)
         * upstream).sum().backward()
        grads.append((weight.grad.clone(), sink.grad.clone()))  # type: ignore[union-attr]
    for later in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], later, strict=True))
    cpu = weight.detach().cpu().requires_grad_()
    cpu_sink = torch.zeros_like(cpu, requires_grad=True)
    (embedding_bag_mean(cpu, ids.cpu(), squares=cpu_sink) * upstream.cpu()).sum().backward()
    assert_close(grads[0][0].cpu(), cpu.grad, rtol=1e-4, atol=1e-4)
    assert_close(grads[0][1].cpu(), cpu_sink.grad, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_cuda_forward_equals_the_cpu_forward_bit_for_bit() -> None:
    ids = torch.randint(0, 300, (64, 101))
    weight = _table(300, 48)
    got = embedding_bag_mean(weight.cuda(), ids.cuda())
    assert torch.equal(got.cpu(), embedding_bag_mean(weight, ids))


@needs_cuda
def test_cuda_deterministic_without_any_reproducible_path_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops.dispatch, "_cuda", lambda: None)
    weight = torch.randn(5, 2, device="cuda")
    with pytest.raises(RuntimeError, match="pip install triton"):
        embedding_bag_mean(weight, torch.tensor([[1, 2]], device="cuda"), deterministic=True)
