"""The mean embedding bag and the gather: forward order, gradients, the squared-gradient sink."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embeddings import ops
from embeddings.ops import (
    MeanEmbedding,
    cpu,
    embedding_bag_mean,
    embedding_gather,
    scatter_occurrences,
    square_sinks,
    tf_order_mean,
    tf_order_sum,
)
from embeddings.testing import assert_close, torchrun

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_forward_sums_below_16_positions_in_one_running_sum() -> None:
    # Seven positions: TensorFlow's CPU sum (measured, docs/presets.md) adds them in
    # order; four lanes would give (e0+e4) + (e1+e5) + (e2+e6) + e3, which rounds otherwise.
    e = torch.tensor([1e8, 1.0, -1e8, 3.0, -1e8, 5.0, 1e8], dtype=torch.float32)
    running = torch.zeros(())
    for x in e:
        running = running + x
    lanes = [e[0] + e[4], e[1] + e[5], e[2] + e[6], e[3]]
    assert tf_order_mean(e.view(1, 7, 1)).item() == (running / 7).item()
    assert (running / 7).item() != ((((lanes[0] + lanes[1]) + lanes[2]) + lanes[3]) / 7).item()


def test_forward_sums_in_four_lanes_then_adds_the_tail() -> None:
    # 18 positions: lanes over positions 0..15, combined, then e16 and e17 one at a time.
    e = torch.zeros(18)
    e[0], e[1], e[16], e[17] = 1e8, 3.0, -1e8, 1.0
    lanes = [e[r:16:4].sum() for r in range(4)]  # exact here: one nonzero term per lane
    expected = ((((lanes[0] + lanes[1]) + lanes[2]) + lanes[3]) + e[16]) + e[17]
    padded_lanes = [e[r::4].sum() for r in range(4)]  # the tail spread over the lanes
    padded = ((padded_lanes[0] + padded_lanes[1]) + padded_lanes[2]) + padded_lanes[3]
    assert tf_order_sum(e.view(1, 18, 1)).item() == expected.item()
    assert expected.item() != padded.item()


def test_masked_mean_leaves_padding_out(bag_path: str) -> None:
    weight = torch.randn(5, 16)
    ids = torch.tensor([[4, 2] + [0] * 98, [3] * 100])
    got = embedding_bag_mean(weight, ids, mask_zero=True)
    assert torch.equal(got[0], (weight[4] + weight[2]) / 2)
    assert torch.equal(got[1], embedding_bag_mean(weight, ids[1:])[0])  # no padding: the mean


# Triton's interpreter (the cuda path on the CPU) divides with NumPy, which warns on 0 / 0.
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_masked_mean_of_padding_only_is_nan_as_in_tensorflow(bag_path: str) -> None:
    assert torch.isnan(embedding_bag_mean(torch.randn(3, 16), torch.zeros(2, 20,
                                                                          dtype=torch.int64),
                                          mask_zero=True)).all()


def test_masked_gradient_skips_padding_and_divides_by_the_count(bag_path: str) -> None:
    weight = torch.zeros(4, 2, requires_grad=True)
    sink = torch.zeros(4, 2, requires_grad=True)
    ids = torch.tensor([[1, 1, 3, 0], [1, 2, 0, 0]])
    upstream = torch.tensor([[3.0, -6.0], [2.0, 6.0]])
    (embedding_bag_mean(weight, ids, squares=sink, mask_zero=True) * upstream).sum().backward()
    g0, g1 = upstream[0] / 3, upstream[1] / 2  # each occurrence's row: over the real ids only
    assert torch.equal(weight.grad[1], (g0 + g0) + g1)
    assert torch.equal(sink.grad[1], (g0 * g0 + g0 * g0) + g1 * g1)
    assert torch.equal(weight.grad[0], torch.zeros(2))  # padding: no gradient
    assert torch.equal(sink.grad[0], torch.zeros(2))


def test_masked_gradcheck_in_float64(bag_path: str) -> None:
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[1, 5, 5, 0], [2, 2, 2, 2], [3, 0, 0, 0]])
    assert torch.autograd.gradcheck(lambda w: embedding_bag_mean(w, ids, mask_zero=True),
                                    (weight,))


def test_mask_zero_with_offsets_is_refused() -> None:
    with pytest.raises(ValueError, match="mask_zero applies to dense"):
        embedding_bag_mean(torch.randn(3, 2), torch.tensor([1, 2]), torch.tensor([0]),
                           mask_zero=True)


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


def test_sink_gradient_is_the_sum_of_squared_occurrence_gradients(bag_path: str) -> None:
    weight = torch.zeros(4, 2, requires_grad=True)
    sink = torch.zeros(4, 2, requires_grad=True)
    ids = torch.tensor([[1, 1, 3, 0], [1, 2, 2, 2]])
    upstream = torch.tensor([[4.0, -8.0], [2.0, 6.0]])
    (embedding_bag_mean(weight, ids, squares=sink) * upstream).sum().backward()
    g = upstream / 4  # each occurrence's gradient row
    # row 1 occurs twice in bag 0 and once in bag 1; squares are summed per occurrence
    assert_close(weight.grad[1], 2 * g[0] + g[1], rtol=0, atol=0)
    assert_close(sink.grad[1], 2 * g[0] ** 2 + g[1] ** 2, rtol=0, atol=0)
    assert_close(sink.grad[2], 3 * g[1] ** 2, rtol=0, atol=0)
    assert not torch.equal(sink.grad[2], weight.grad[2] ** 2)  # not (sum g)^2
    assert not torch.equal(sink, torch.ones(4, 2))  # the sink's value is never touched


def test_sink_gradient_accumulates_like_grad(bag_path: str) -> None:
    weight = torch.zeros(3, 1, requires_grad=True)
    sink = torch.zeros(3, 1, requires_grad=True)
    ids = torch.tensor([[1, 2]])
    for _ in range(2):
        embedding_bag_mean(weight, ids, squares=sink).sum().backward()
    assert_close(sink.grad, torch.tensor([[0.0], [0.5], [0.5]]), rtol=0, atol=0)


def test_no_sink_no_squares(bag_path: str) -> None:
    """Without a sink the backward computes the gradient alone, the same gradient."""
    weight = torch.randn(6, 3, requires_grad=True)
    ids = torch.tensor([[0, 1, 1, 5], [2, 2, 2, 2]])
    upstream = torch.randn(2, 3)
    (embedding_bag_mean(weight, ids) * upstream).sum().backward()
    alone = weight.grad.clone()
    weight.grad = None
    sink = torch.zeros(6, 3, requires_grad=True)
    (embedding_bag_mean(weight, ids, squares=sink) * upstream).sum().backward()
    assert torch.equal(alone, weight.grad)


def test_sink_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"squares must have the table's shape.*\(3, 2\)"):
        embedding_bag_mean(torch.zeros(3, 2), torch.tensor([[1]]),
                           squares=torch.zeros(2, 2, requires_grad=True))


def test_gather_backward_delivers_the_squares(bag_path: str) -> None:
    weight = torch.zeros(4, 2, requires_grad=True)
    sink = torch.zeros(4, 2, requires_grad=True)
    ids = torch.tensor([[1, 1, 3], [1, 2, 2]])
    upstream = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    (embedding_gather(weight, ids, squares=sink) * upstream).sum().backward()
    g = upstream.reshape(6, 2)
    assert_close(weight.grad[1], g[0] + g[1] + g[3], rtol=0, atol=0)
    assert_close(sink.grad[1], g[0] ** 2 + g[1] ** 2 + g[3] ** 2, rtol=0, atol=0)
    assert_close(sink.grad[2], g[4] ** 2 + g[5] ** 2, rtol=0, atol=0)


def test_module_owns_its_sink_outside_the_state_dict() -> None:
    module = MeanEmbedding(5, 2)
    assert [n for n, _ in module.named_parameters()] == ["embeddings", "occurrence_squares"]
    assert list(module.state_dict()) == ["embeddings"]
    fresh = MeanEmbedding(5, 2)
    fresh.load_state_dict(module.state_dict())  # strict: the sink is not expected
    assert torch.equal(fresh.embeddings, module.embeddings)
    assert square_sinks(module) == {module.embeddings: module.occurrence_squares}
    assert square_sinks(MeanEmbedding(5, 2, squares=False)) == {}
    module(torch.tensor([[1, 1, 4]])).sum().backward()
    assert module.occurrence_squares.grad is not None


# Dynamo itself instantiates torch.autograd.Function while tracing a custom Function.
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_the_sink_survives_torch_compile() -> None:
    """The squares are an autograd output: a compiled model delivers the same ones (on the
    reference path, which Dynamo traces into; an attribute set in backward would be lost)."""
    torch._dynamo.reset()
    ids = torch.tensor([[1, 1, 3, 0], [1, 2, 2, 2]])
    grads = []
    with ops.use("reference"):
        for compiled in (False, True):
            module = MeanEmbedding(4, 3)
            with torch.no_grad():
                module.embeddings.copy_(torch.arange(12.0).view(4, 3) / 10)
            run = torch.compile(module, backend="aot_eager") if compiled else module
            (run(ids) * torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])).sum().backward()
            grads.append((module.embeddings.grad, module.occurrence_squares.grad))
    assert grads[1][1] is not None
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


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
        batch: int, length: int, vocab: int, dim: int) -> None:
    """Same float32 operation order: values, gradients and squared sums are identical."""
    if not cpu.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    ids = torch.randint(0, vocab, (batch, length))
    ids[0, : length // 2 + 1] = 0  # repeated ids and padding
    upstream = torch.randn(batch, dim)
    results = []
    for path in ("cpu", "reference"):
        torch.manual_seed(1)  # the same table, rows of very different scales
        scale = 10.0 ** torch.randint(-3, 3, (vocab, 1))
        weight = (torch.randn(vocab, dim) * scale).requires_grad_()
        sink = torch.zeros(vocab, dim, requires_grad=True)
        with ops.use(path):
            out = embedding_bag_mean(weight, ids, squares=sink)
            (out * upstream).sum().backward()
        results.append((out.detach(), weight.grad, sink.grad))
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.equal(a, b)


def test_kernels_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings.native import NativeLibrary

    monkeypatch.setenv("EMBEDDINGS_KERNELS", "0")
    assert not NativeLibrary(cpu.LIBRARY.source, cpu.LIBRARY.signatures).available()


def test_missing_compiler_falls_back_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                              caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from embeddings.native import NativeLibrary

    library = NativeLibrary(cpu.LIBRARY.source, cpu.LIBRARY.signatures)
    monkeypatch.setattr(cpu, "LIBRARY", library)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    with caplog.at_level("INFO", logger="embeddings.native"):
        assert not cpu.available()
    assert "no C compiler" in caplog.text
    weight = torch.randn(5, 2, requires_grad=True)
    embedding_bag_mean(weight, torch.tensor([[1, 2, 0]])).sum().backward()  # torch path works
    assert weight.grad is not None
    assert ops.kernels_for(weight) is ops.reference


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
    sink = torch.zeros(vocab, dim, device=device, requires_grad=True)
    ours = embedding_bag_mean(weight, ids, offsets, squares=sink)
    (ours * upstream).sum().backward()
    theirs = stock(ids, offsets)
    (theirs * upstream).sum().backward()
    # float32, summation order differs: a few ulps of values of order 1.
    assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert_close(weight.grad, stock.weight.grad, rtol=1e-5, atol=1e-6)
    assert not ours[2].any()  # the empty bag
    g = upstream / torch.tensor([3.0, 1, 1, 4, 1], device=device)[:, None]
    assert_close(sink.grad[3], 2 * g[0] ** 2, rtol=1e-6, atol=0)  # id 3 twice in bag 0
    assert_close(sink.grad[0], 3 * g[3] ** 2, rtol=1e-6, atol=0)


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


@pytest.mark.parametrize("dim", [7, 16])
def test_occurrence_scatter_is_the_same_compiled_or_not(dim: int) -> None:
    """The gather backward of ragged bags and of Keras's Embedding: identical bits."""
    if not cpu.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    rows = torch.randn(5000, dim) * 10.0 ** torch.randint(-4, 2, (5000, 1))
    ids = torch.randint(0, 40, (5000,))
    with ops.use("cpu"):
        compiled = scatter_occurrences(rows, ids, 40)
    with ops.use("reference"):
        fallback = scatter_occurrences(rows, ids, 40)
    assert all(torch.equal(a, b) for a, b in zip(compiled, fallback, strict=True))


def test_ragged_forward_is_the_same_compiled_or_not() -> None:
    if not cpu.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    weight = torch.randn(40, 21) * 10.0 ** torch.randint(-4, 2, (40, 1))
    ids = torch.randint(0, 40, (3000,))
    offsets = torch.tensor([0, 0, 7, 1000, 1000, 2999])  # empty bags, a bag of one at the end
    with ops.use("cpu"):
        compiled = embedding_bag_mean(weight, ids, offsets)
    with ops.use("reference"):
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
    if not cpu.available():
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    ids = torch.randint(0, vocab, (batch, length))
    ids[0, : length // 2 + 1] = 0
    rows = torch.randn(batch * length, dim) * 10.0 ** torch.randint(-4, 2, (batch * length, 1))
    upstream = torch.randn(batch, dim)
    weight = torch.randn(vocab, dim)
    results = []
    for threshold in (0, 1 << 62):  # grouped, then scattered
        monkeypatch.setattr(cpu, "GROUPED_MIN_ELEMENTS", threshold)
        leaf = weight.clone().requires_grad_()
        sink = torch.zeros_like(weight, requires_grad=True)
        masked_leaf = weight.clone().requires_grad_()
        masked_sink = torch.zeros_like(weight, requires_grad=True)
        with ops.use("cpu"):
            (embedding_bag_mean(leaf, ids, squares=sink) * upstream).sum().backward()
            (embedding_bag_mean(masked_leaf, ids, squares=masked_sink, mask_zero=True)
             * upstream).sum().backward()
            results.append((leaf.grad, sink.grad, masked_leaf.grad, masked_sink.grad,
                            *scatter_occurrences(rows, ids.flatten(), vocab),
                            scatter_occurrences(rows, ids.flatten(), vocab, squares=False)[0]))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


_DDP_SCRIPT = """
import json, sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from embeddings.model import SentimentClassifier, binary_crossentropy_from_logits, keras_init_
dist.init_process_group("gloo")
rank = dist.get_rank()
model = SentimentClassifier(20, 4, 3)
keras_init_(model, 0)
ddp = DistributedDataParallel(model)
batch = json.loads(sys.argv[2])[rank]
ids, labels = torch.tensor(batch["ids"]), torch.tensor(batch["labels"])
binary_crossentropy_from_logits(ddp(ids), labels).backward()
if rank == 0:
    grads = {n: p.grad.tolist() for n, p in model.named_parameters()}
    with open(sys.argv[1], "w") as f:
        json.dump(grads, f)
dist.barrier()  # both ranks leave together: a gloo peer torn down early can abort the other
dist.destroy_process_group()
"""


def test_ddp_all_reduces_the_sink_like_every_gradient(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two real gloo processes under torchrun: DDP averages the squared-gradient sink's
    gradient with the others, so each rank holds the mean of the per-rank squared sums."""
    import json

    from embeddings.model import SentimentClassifier, binary_crossentropy_from_logits, keras_init_

    generator = torch.Generator().manual_seed(0)
    batches = [{"ids": torch.randint(0, 20, (6, 5), generator=generator).tolist(),
                "labels": torch.randint(0, 2, (6,), generator=generator).tolist()}
               for _ in range(2)]
    alone = []
    for batch in batches:  # each rank's gradients in one process
        model = SentimentClassifier(20, 4, 3)
        keras_init_(model, 0)
        binary_crossentropy_from_logits(model(torch.tensor(batch["ids"])),
                                        torch.tensor(batch["labels"])).backward()
        alone.append({n: p.grad for n, p in model.named_parameters()})
    script, out = tmp_path / "ddp.py", tmp_path / "grads.json"
    script.write_text(_DDP_SCRIPT)
    proc = torchrun([str(script), str(out), json.dumps(batches)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    reduced = {n: torch.tensor(v) for n, v in json.loads(out.read_text()).items()}
    assert set(reduced) == {"embedding.embeddings", "embedding.occurrence_squares",
                            "dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"}
    for name, grad in reduced.items():
        # gloo sums the two halves g / 2 (exact in float32 barring underflow)
        assert_close(grad, (alone[0][name] + alone[1][name]) / 2, rtol=1e-6, atol=1e-12)
    assert reduced["embedding.occurrence_squares"].abs().sum() > 0
