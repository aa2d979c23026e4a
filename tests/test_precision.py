"""``--precision bf16``: the forward reads a bfloat16 copy of the table, all else is float32.

The bag mean of bfloat16 rows is checked against its closed form (the rows rounded to
bfloat16, widened, then summed in TensorFlow's float32 lane order) on the three kernel
paths, the Triton one in its interpreter; the backward, the table, Adam's moments and the
checkpoint against float32 mode's; the lookup copy against ``table.bfloat16()`` after
every way the table changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from torch.autograd.graph import increment_version

from embeddings import ops, train
from embeddings.ops import MeanEmbedding, embedding_bag_mean, reference, tf_order_sum
from embeddings.optim import KerasAdam


def _table(vocab: int, dim: int) -> torch.Tensor:
    """Rows of very different scales, so that any change of summation order shows, and
    values that bfloat16 cannot hold, so that rounding shows."""
    return torch.randn(vocab, dim) * 10.0 ** torch.randint(-3, 3, (vocab, 1))


def _closed_form(table: torch.Tensor, ids: torch.Tensor, mask_zero: bool,
                 sums: torch.dtype = torch.float32) -> torch.Tensor:
    """The bf16 mean by hand: rows rounded to bfloat16, widened to ``sums``, added in
    TensorFlow's lane order (id 0 left out of the sum and the count under ``mask_zero``)."""
    rows = F.embedding(ids, table.bfloat16()).to(sums)  # (B, T) -> (B, T, D)
    keep = (ids != 0) if mask_zero else torch.ones_like(ids, dtype=torch.bool)  # (B, T)
    summed = tf_order_sum(torch.where(keep[:, :, None], rows, torch.zeros_like(rows)))
    return (summed / keep.sum(1, keepdim=True).to(sums)).float()  # (B, D) / (B, 1)


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize(("batch", "length", "vocab", "dim"),
                         [(5, 7, 13, 3), (9, 33, 40, 70), (16, 100, 300, 16)])
def test_bf16_forward_sums_the_rounded_rows_in_float32(
        bag_path: str, batch: int, length: int, vocab: int, dim: int, mask_zero: bool) -> None:
    table, ids = _table(vocab, dim), torch.randint(1, vocab, (batch, length))
    ids[:, length // 2 + 1:] = 0  # padding after each review
    got = embedding_bag_mean(table, ids, mask_zero=mask_zero, lookup=table.bfloat16())
    assert got.dtype == torch.float32
    assert torch.equal(got, _closed_form(table, ids, mask_zero))
    # Negative twins: the float32 table, or sums kept in bfloat16, give other means.
    assert not torch.equal(got, embedding_bag_mean(table, ids, mask_zero=mask_zero))
    assert not torch.equal(got, _closed_form(table, ids, mask_zero, sums=torch.bfloat16))


def test_triton_bf16_forward_equals_the_reference_bit_for_bit(
        cuda_kernels: ModuleType) -> None:
    table = _table(50, 70).bfloat16()  # two column blocks
    dense = torch.randint(0, 50, (6, 37))
    for mask_zero in (False, True):
        with ops.use("cuda"):
            got = embedding_bag_mean(table.float(), dense, mask_zero=mask_zero, lookup=table)
        assert torch.equal(got, reference.bag_mean(table, dense, None, mask_zero))
    flat, offsets = torch.randint(0, 50, (90,)), torch.tensor([0, 0, 1, 40])  # empty bag first
    with ops.use("cuda"):
        ragged = embedding_bag_mean(table.float(), flat, offsets, lookup=table)
    assert torch.equal(ragged, reference.bag_mean(table, flat, offsets))
    lengths = reference.bag_lengths(flat, offsets)
    sums = torch.zeros(4, 70).index_add_(0, reference.bag_of(lengths), table[flat].float())
    assert torch.equal(ragged, sums / lengths.clamp(min=1)[:, None].float())


def test_bf16_lookups_on_the_cpu_go_to_the_reference() -> None:
    table, ids = torch.zeros(4, 8), torch.zeros(2, 3, dtype=torch.int64)
    assert ops.kernels_for(table.bfloat16(), ids, None) is reference


def _twins(mask_zero: bool = False, sparse: bool = False
           ) -> tuple[MeanEmbedding, MeanEmbedding]:
    """A float32 module and a bf16 one holding the same table."""
    exact = MeanEmbedding(30, 16, mask_zero=mask_zero, sparse=sparse)
    bf16 = MeanEmbedding(30, 16, mask_zero=mask_zero, sparse=sparse, precision="bf16")
    bf16.load_state_dict(exact.state_dict())
    return exact, bf16


def _copy(module: MeanEmbedding) -> torch.Tensor:
    """The bf16 module's lookup copy, as its next forward reads it."""
    lookup = module.lookup_table()
    assert lookup is not None and lookup.dtype == torch.bfloat16
    return lookup


@pytest.mark.parametrize(("mask_zero", "sparse"), [(False, False), (True, False),
                                                   (False, True), (True, True)])
def test_bf16_changes_the_forward_only(bag_path: str, mask_zero: bool, sparse: bool) -> None:
    """The same upstream gradient gives the same float32 table and sink gradients, dense or
    sparse, masked or not: the backward never reads the values."""
    exact, bf16 = _twins(mask_zero, sparse)
    ids = torch.randint(0, 30, (8, 20))
    ids[:, 15:] = 0
    upstream = torch.randn(8, 16)
    outputs = []
    for module in (exact, bf16):
        out = module(ids)
        (out * upstream).sum().backward()
        outputs.append(out)
    assert torch.equal(outputs[1], _closed_form(exact.embeddings.detach(), ids, mask_zero))
    assert not torch.equal(outputs[1], outputs[0])  # the forward did change
    for name in ("embeddings", MeanEmbedding.SINK):
        ours, wanted = getattr(bf16, name).grad, getattr(exact, name).grad
        assert ours.dtype == torch.float32 and ours.is_sparse == sparse
        assert torch.equal(ours.to_dense(), wanted.to_dense()), name


@pytest.mark.parametrize("table_update", ["dense", "rows"])
def test_an_adam_step_keeps_float32_state_and_the_copy_follows(bag_path: str,
                                                               table_update: str) -> None:
    """The same gradients give bit-identical float32 tables and moments in both modes, and
    the next forward reads the new table rounded to bfloat16."""
    exact, bf16 = _twins(sparse=table_update == "rows")
    ids = torch.randint(0, 30, (8, 20))
    before = _copy(bf16).clone()
    exact(ids).sum().backward()
    for name in ("embeddings", MeanEmbedding.SINK):
        getattr(bf16, name).grad = getattr(exact, name).grad.clone()
    steps = {}
    for module in (exact, bf16):
        steps[module] = KerasAdam(module.parameters(), lr=0.01,
                                  squares=ops.square_sinks(module), table_update=table_update)
        steps[module].step()
    assert torch.equal(bf16.embeddings, exact.embeddings)
    for key in ("m", "v"):
        ours = steps[bf16].state[bf16.embeddings][key]
        assert ours.dtype == torch.float32, key
        assert torch.equal(ours, steps[exact].state[exact.embeddings][key]), key
    assert torch.equal(_copy(bf16), exact.embeddings.detach().bfloat16())
    assert not torch.equal(_copy(bf16), before)  # a stale copy


def test_the_copy_follows_the_tables_version_counter() -> None:
    """A write the version counter does not see leaves the copy stale until the writer
    advances the counter, as :mod:`embeddings.optim` does after its C and Triton kernels."""
    module = MeanEmbedding(6, 8, precision="bf16")
    first = _copy(module).clone()
    module.embeddings.data.add_(0.5)  # .data: an untracked write
    assert torch.equal(_copy(module), first)
    increment_version(module.embeddings)
    assert torch.equal(_copy(module), module.embeddings.detach().bfloat16())
    assert not _copy(module).requires_grad  # rounded outside autograd


def test_the_state_dict_holds_no_copy_and_loading_rebuilds_it() -> None:
    exact, bf16 = _twins()
    assert list(bf16.state_dict()) == list(exact.state_dict()) == ["embeddings"]
    _copy(bf16)
    changed = {"embeddings": torch.randn(30, 16)}
    bf16.load_state_dict(changed)  # what --resume does to a fresh model
    assert torch.equal(_copy(bf16), changed["embeddings"].bfloat16())
    assert MeanEmbedding(30, 16).lookup_table() is None  # float32 mode holds no copy


def test_bad_precision_and_lookup_are_named() -> None:
    with pytest.raises(ValueError, match="precision must be one of float32, bf16. Received: "
                                         "precision='fp16'; float32 is exact"):
        MeanEmbedding(3, 2, precision="fp16")
    table = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"lookup must be a copy of the table .*Received: "
                                         r"lookup \(4, 3\) on cpu, weight \(4, 2\) on cpu"):
        embedding_bag_mean(table, torch.zeros(1, 2, dtype=torch.int64),
                           lookup=torch.zeros(4, 3, dtype=torch.bfloat16))


def test_a_resumed_bf16_run_rounds_its_copy_from_the_saved_table(small_imdb: Path,
                                                                 tmp_path: Path) -> None:
    """--resume rebuilds the lookup copy from the checkpoint's float32 table: a bf16 run of
    2 epochs extended to 3 ends with the weights and history of 3 epochs straight."""
    flags = ["--batch-size", "4", "--vocab-size", "20", "--sequence-length", "12",
             "--device", "cpu", "--learning-rate", "0.01", "--data", str(small_imdb)]
    runs = {}
    for name, precision, epochs in (("resumed", "bf16", 2), ("straight", "bf16", 3),
                                    ("float32", "float32", 3)):
        runs[name] = tmp_path / name
        assert train.main([*flags, "--precision", precision, "--epochs", str(epochs),
                           "--out", str(runs[name])]) == 0
    assert train.main(["--resume", str(runs["resumed"]), "--epochs", "3"]) == 0
    history = {name: json.loads((run / "history.json").read_text())
               for name, run in runs.items()}
    weights = {name: load_file(run / "model.safetensors") for name, run in runs.items()}
    assert history["resumed"]["loss"] == history["straight"]["loss"]
    assert history["resumed"]["val_loss"] == history["straight"]["val_loss"]
    for key, value in weights["straight"].items():
        np.testing.assert_array_equal(weights["resumed"][key], value, err_msg=key)
    assert history["straight"]["loss"] != history["float32"]["loss"]  # bf16 did change it
