"""Data-parallel training under torchrun: real gloo process groups on the CPU.

N ranks with one global batch end within float32 rounding of one process: the gradient
sums over the ranks only change the order of float32 additions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.numpy import load_file

from embeddings.backends import distributed
from embeddings.backends.distributed import World, shard
from embeddings.testing import assert_close, torchrun

FLAGS = ["--epochs", "3", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
         "--device", "cpu", "--learning-rate", "0.01"]


def _train(small_imdb: Path, out: Path, *flags: str,
           ranks: int = 1) -> subprocess.CompletedProcess[str]:
    argv = ["-m", "embeddings.train", *FLAGS, *flags, "--data", str(small_imdb), "--out",
            str(out)]
    if ranks > 1:
        return torchrun(argv, ranks=ranks)
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=300, check=False)


def _history(run: Path) -> dict[str, list[float]]:
    return json.loads((run / "history.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One process, two gloo ranks (both at the global batch 8), and one process at the
    batch of one rank's share (4)."""
    from embeddings.testing import write_imdb_tree
    from tests.conftest import small_corpus

    root = tmp_path_factory.mktemp("ranks")
    corpus = write_imdb_tree(root, small_corpus())
    runs = {"one": root / "one", "two": root / "two", "half": root / "half"}
    assert _train(corpus, runs["one"]).returncode == 0
    done = _train(corpus, runs["two"], ranks=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Epoch 3/3") == 1  # rank 0 alone prints
    assert _train(corpus, runs["half"], "--batch-size", "4").returncode == 0
    assert sorted(p.name for p in root.iterdir()) == ["aclImdb", "half", "one", "two"]
    return runs


def test_two_gloo_ranks_end_within_float32_rounding_of_one_process(
        trained: dict[str, Path]) -> None:
    ours, wanted = _history(trained["two"]), _history(trained["one"])
    # The printed metrics are the global batch's: the same accuracies; the losses differ by
    # float32 summation order only (sums over two ranks instead of one).
    assert ours["accuracy"] == wanted["accuracy"]
    assert_close(ours["val_accuracy"], wanted["val_accuracy"], rtol=0, atol=0.002)
    for key in ("loss", "val_loss"):
        assert_close(ours[key], wanted[key], rtol=1e-6, atol=1e-7)
    weights = load_file(trained["two"] / "model.safetensors")
    expected = load_file(trained["one"] / "model.safetensors")
    for name in expected:  # 12 Adam steps of float32 reordering: ulps of order-1 weights
        assert_close(weights[name], expected[name], rtol=1e-5, atol=1e-6)


def test_per_rank_batches_would_break_the_match(trained: dict[str, Path]) -> None:
    """The negative twin: one process with each rank's share as its whole batch trains
    another model than the two ranks with the global batch."""
    weights = load_file(trained["two"] / "model.safetensors")
    other = load_file(trained["half"] / "model.safetensors")
    with pytest.raises(AssertionError):
        assert_close(weights["embedding.embeddings"], other["embedding.embeddings"],
                     rtol=1e-5, atol=1e-6)


def test_a_backend_that_cannot_run_data_parallel_is_refused(small_imdb: Path,
                                                            tmp_path: Path) -> None:
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}  # what torchrun sets
    done = subprocess.run([sys.executable, "-m", "embeddings.train", *FLAGS, "--backend",
                           "keras", "--data", str(small_imdb), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --backend keras cannot train data-parallel: it runs as one process. "
        "Received: --backend keras under torchrun (WORLD_SIZE=2); run it without torchrun "
        "or use --backend torch.")


@pytest.mark.parametrize(("start", "stop", "size"), [(0, 8, 2), (16, 23, 3), (5, 6, 4)])
def test_shards_cut_the_global_batch_into_contiguous_near_equal_parts(start: int, stop: int,
                                                                     size: int) -> None:
    parts = [shard(slice(start, stop), World(rank, size)) for rank in range(size)]
    covered = [i for p in parts for i in range(p.start, p.stop)]
    assert covered == list(range(start, stop))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1


def _reduce_worker(rank: int, size: int, init: str,
                   results: dict[int, dict[str, object]]) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        dense = torch.nn.Parameter(torch.zeros(2, 3))
        dense.grad = torch.full((2, 3), float(rank + 1))
        table = torch.nn.Parameter(torch.zeros(6, 2))
        rows = torch.tensor([[1, 4]]) if rank == 0 else torch.tensor([[0, 4]])
        table.grad = torch.sparse_coo_tensor(rows, torch.tensor([[1.0, 2.0], [3.0, 4.0]])
                                             * (rank + 1), (6, 2))
        unused = torch.nn.Parameter(torch.zeros(3))  # no gradient: summed as zeros
        stop = distributed.reduce_gradients([dense, table, unused], rank == 1,
                                            World(rank, size))
        results[rank] = {"dense": dense.grad.tolist(), "table": table.grad.to_dense().tolist(),
                         "sparse": table.grad.is_sparse, "unused": unused.grad.tolist(),
                         "stop": stop}
    finally:
        torch.distributed.destroy_process_group()


def test_gradients_sum_over_ranks_sparse_ones_by_their_touched_rows(tmp_path: Path) -> None:
    results = mp.Manager().dict()
    mp.spawn(_reduce_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", results), nprocs=2)
    for rank in (0, 1):
        got = results[rank]
        assert got["dense"] == [[3.0] * 3] * 2
        expected = np.zeros((6, 2))
        expected[[1, 4]] += [[1, 2], [3, 4]]  # rank 0's rows
        expected[[0, 4]] += np.array([[1, 2], [3, 4]]) * 2  # rank 1's
        assert got["table"] == expected.tolist() and got["sparse"]
        assert got["unused"] == [0.0] * 3
        assert got["stop"] is True  # rank 1 asked: both stop
