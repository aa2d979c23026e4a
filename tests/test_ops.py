"""The mean embedding bag: forward order, gradients, per-occurrence squared sums."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embeddings.ops import MeanEmbedding, embedding_bag_mean, tf_order_mean
from embeddings.testing import assert_close

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_forward_sums_in_four_interleaved_lanes() -> None:
    # Seven positions, one channel: lanes (e0+e4), (e1+e5), (e2+e6), e3.
    e = torch.tensor([1e8, 1.0, -1e8, 3.0, -1e8, 5.0, 1e8], dtype=torch.float32)
    lanes = [e[0] + e[4], e[1] + e[5], e[2] + e[6], e[3]]
    expected = (((lanes[0] + lanes[1]) + lanes[2]) + lanes[3]) / 7
    got = tf_order_mean(e.view(1, 7, 1))
    assert got.item() == expected.item()
    assert got.item() != (e.sum() / 7).item()  # a plain sum rounds the 1e8 terms differently


def test_padding_counts_in_the_mean(bag_path: str) -> None:
    weight = torch.randn(5, 3)
    ids = torch.tensor([[4] + [0] * 99])
    assert_close(embedding_bag_mean(weight, ids)[0], (weight[4] + 99 * weight[0]) / 100,
                 rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(1, 1, 3, 2), (7, 5, 11, 4), (32, 100, 50, 16), (3, 13, 2, 5)])
def test_values_and_gradient_match_nn_embeddingbag(batch: int, length: int, vocab: int,
                                                   dim: int, device: str,
                                                   bag_path: str) -> None:
    ids = torch.randint(0, vocab, (batch, length), device=device)
    ids[0] = 0  # an all-padding bag
    ids[-1, : length // 2 + 1] = vocab - 1  # repeated ids within a bag
    weight = torch.randn(vocab, dim, device=device, requires_grad=True)
    stock = nn.EmbeddingBag(vocab, dim, mode="mean").to(device)
    with torch.no_grad():
        stock.weight.copy_(weight)
    upstream = torch.randn(batch, dim, device=device)

    ours = embedding_bag_mean(weight, ids)
    (ours * upstream).sum().backward()
    theirs = stock(ids)
    (theirs * upstream).sum().backward()
    # float32, summation order differs: a few ulps of values of order 1.
    assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert_close(weight.grad, stock.weight.grad, rtol=1e-5, atol=1e-6)


def test_gradcheck_in_float64(bag_path: str) -> None:
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 1, 1, 5], [2, 2, 2, 2], [0, 0, 0, 0]])
    assert torch.autograd.gradcheck(lambda w: embedding_bag_mean(w, ids), (weight,))


def test_backward_delivers_sum_of_squared_occurrence_gradients(bag_path: str) -> None:
    weight = torch.zeros(4, 2, requires_grad=True)
    ids = torch.tensor([[1, 1, 3, 0], [1, 2, 2, 2]])
    upstream = torch.tensor([[4.0, -8.0], [2.0, 6.0]])
    (embedding_bag_mean(weight, ids) * upstream).sum().backward()
    g = upstream / 4  # each occurrence's gradient row
    # row 1 occurs twice in bag 0 and once in bag 1; squares are summed per occurrence
    assert_close(weight.grad[1], 2 * g[0] + g[1], rtol=0, atol=0)
    assert_close(weight.grad_sq[1], 2 * g[0] ** 2 + g[1] ** 2, rtol=0, atol=0)
    assert_close(weight.grad_sq[2], 3 * g[1] ** 2, rtol=0, atol=0)
    assert not torch.equal(weight.grad_sq[2], weight.grad[2] ** 2)  # not (sum g)^2


def test_grad_sq_accumulates_like_grad(bag_path: str) -> None:
    weight = torch.zeros(3, 1, requires_grad=True)
    ids = torch.tensor([[1, 2]])
    for _ in range(2):
        embedding_bag_mean(weight, ids).sum().backward()
    assert_close(weight.grad_sq, torch.tensor([[0.0], [0.5], [0.5]]), rtol=0, atol=0)


@pytest.mark.parametrize("ids", [torch.tensor([1, 2]), torch.tensor([[0.0, 1.0]])])
def test_bad_ids_are_rejected(ids: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="ids must"):
        embedding_bag_mean(torch.zeros(3, 2), ids)


def test_module_initializes_like_keras_uniform() -> None:
    table = MeanEmbedding(1000, 8).embeddings
    assert table.shape == (1000, 8)
    assert -0.05 <= table.min() < -0.04 and 0.04 < table.max() <= 0.05


@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(1, 1, 3, 1), (5, 7, 13, 3), (64, 100, 300, 16), (9, 33, 40, 130),
                          (300, 50, 1000, 16)])
def test_compiled_kernels_equal_the_torch_formulation_bit_for_bit(
        batch: int, length: int, vocab: int, dim: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same float32 operation order: values, gradients and squared sums are identical."""
    from embeddings import kernels

    if not kernels.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    ids = torch.randint(0, vocab, (batch, length))
    ids[0, : length // 2 + 1] = 0  # repeated ids and padding
    upstream = torch.randn(batch, dim)
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "usable", lambda *tensors: False)
        torch.manual_seed(1)  # the same table, rows of very different scales
        scale = 10.0 ** torch.randint(-3, 3, (vocab, 1))
        weight = (torch.randn(vocab, dim) * scale).requires_grad_()
        out = embedding_bag_mean(weight, ids)
        (out * upstream).sum().backward()
        results.append((out.detach(), weight.grad, weight.grad_sq))
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.equal(a, b)


def test_kernels_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings import kernels

    monkeypatch.setattr(kernels, "_tried", False)
    monkeypatch.setattr(kernels, "_lib", None)
    monkeypatch.setenv("EMBEDDINGS_KERNELS", "0")
    assert not kernels.available()


def test_missing_compiler_falls_back_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                              caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from embeddings import kernels

    monkeypatch.setattr(kernels, "_tried", False)
    monkeypatch.setattr(kernels, "_lib", None)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    with caplog.at_level("INFO", logger="embeddings.kernels"):
        assert not kernels.available()
    assert "no C compiler" in caplog.text
    weight = torch.randn(5, 2, requires_grad=True)
    embedding_bag_mean(weight, torch.tensor([[1, 2, 0]])).sum().backward()  # torch path works
    assert weight.grad is not None


@pytest.mark.parametrize("device", DEVICES)
def test_ragged_bags_match_nn_embeddingbag(device: str, bag_path: str) -> None:
    vocab, dim = 20, 5
    ids = torch.tensor([3, 3, 7, 1, 0, 0, 0, 19, 2], device=device)
    offsets = torch.tensor([0, 3, 4, 4, 8], device=device)  # lengths 3, 1, 0 (empty), 4, 1
    weight = torch.randn(vocab, dim, device=device, requires_grad=True)
    stock = nn.EmbeddingBag(vocab, dim, mode="mean").to(device)
    with torch.no_grad():
        stock.weight.copy_(weight)
    upstream = torch.randn(5, dim, device=device)
    ours = embedding_bag_mean(weight, ids, offsets)
    (ours * upstream).sum().backward()
    theirs = stock(ids, offsets)
    (theirs * upstream).sum().backward()
    # float32, summation order differs: a few ulps of values of order 1.
    assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert_close(weight.grad, stock.weight.grad, rtol=1e-5, atol=1e-6)
    assert not ours[2].any()  # the empty bag
    g = upstream / torch.tensor([3.0, 1, 1, 4, 1], device=device)[:, None]
    assert_close(weight.grad_sq[3], 2 * g[0] ** 2, rtol=1e-6, atol=0)  # id 3 twice in bag 0
    assert_close(weight.grad_sq[0], 3 * g[3] ** 2, rtol=1e-6, atol=0)


def test_ragged_gradcheck_in_float64(bag_path: str) -> None:
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ids, offsets = torch.tensor([0, 1, 1, 5, 2, 2]), torch.tensor([0, 1, 4, 4])
    assert torch.autograd.gradcheck(lambda w: embedding_bag_mean(w, ids, offsets), (weight,))


@pytest.mark.parametrize(("ids", "offsets", "message"), [
    (torch.tensor([[1, 2]]), torch.tensor([0]), "must be 1-D"),
    (torch.tensor([1, 2]), torch.tensor([1]), "start at 0"),
    (torch.tensor([1, 2]), torch.tensor([0, 2, 1]), "never decrease"),
    (torch.tensor([1, 2]), torch.tensor([0, 3]), "within the ids"),
])
def test_bad_offsets_are_rejected(ids: torch.Tensor, offsets: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        embedding_bag_mean(torch.zeros(3, 2), ids, offsets)


def test_occurrence_scatter_is_the_same_compiled_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gather backward of ragged bags and of Keras's Embedding: identical bits."""
    from embeddings import kernels
    from embeddings.ops import scatter_occurrences

    if not kernels.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    rows = torch.randn(5000, 7) * 10.0 ** torch.randint(-4, 2, (5000, 1))
    ids = torch.randint(0, 40, (5000,))
    compiled = scatter_occurrences(rows, ids, 40)
    monkeypatch.setattr(kernels, "available", lambda: False)
    fallback = scatter_occurrences(rows, ids, 40)
    assert all(torch.equal(a, b) for a, b in zip(compiled, fallback, strict=True))


def test_ragged_forward_is_the_same_compiled_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings import kernels

    if not kernels.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    weight = torch.randn(40, 21) * 10.0 ** torch.randint(-4, 2, (40, 1))
    ids = torch.randint(0, 40, (3000,))
    offsets = torch.tensor([0, 0, 7, 1000, 1000, 2999])  # empty bags, a bag of one at the end
    compiled = embedding_bag_mean(weight, ids, offsets)
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert torch.equal(compiled, embedding_bag_mean(weight, ids, offsets))


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_huge_pages_are_asked_for_before_torch_loads(preset: str | None, expected: str) -> None:
    """The package must set torch's THP option on import, and a user's own setting wins."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    code = "import embeddings, os, sys; sys.stdout.write(os.environ['THP_MEM_ALLOC_ENABLE'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout == expected


@pytest.mark.parametrize("bad", [-1, 7])
def test_ids_outside_the_table_are_an_error_not_a_wild_write(bad: int, kernel_path: str) -> None:
    with pytest.raises(IndexError, match=r"ids must lie in \[0, 7\).*Received: ids from"):
        embedding_bag_mean(torch.zeros(7, 2), torch.tensor([[1, bad]]))
    with pytest.raises(IndexError, match=r"ids must lie in \[0, 7\)"):
        embedding_bag_mean(torch.zeros(7, 2), torch.tensor([1, bad]), torch.tensor([0]))


@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(1, 1, 3, 1), (5, 7, 13, 3), (9, 33, 40, 130), (300, 50, 1000, 16)])
def test_grouped_backward_equals_the_scatter_bit_for_bit(
        batch: int, length: int, vocab: int, dim: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large tables group occurrences by row; each element must see the same additions."""
    from embeddings import kernels
    from embeddings.ops import scatter_occurrences

    if not kernels.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    ids = torch.randint(0, vocab, (batch, length))
    ids[0, : length // 2 + 1] = 0
    rows = torch.randn(batch * length, dim) * 10.0 ** torch.randint(-4, 2, (batch * length, 1))
    upstream = torch.randn(batch, dim)
    weight = torch.randn(vocab, dim)
    results = []
    for threshold in (0, 1 << 62):  # grouped, then scattered
        monkeypatch.setattr(kernels, "GROUPED_MIN_ELEMENTS", threshold)
        leaf = weight.clone().requires_grad_()
        (embedding_bag_mean(leaf, ids) * upstream).sum().backward()
        results.append((leaf.grad, leaf.grad_sq, *scatter_occurrences(rows, ids.flatten(), vocab)))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
