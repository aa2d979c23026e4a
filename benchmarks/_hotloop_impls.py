"""The hot-loop benchmark's implementations, inputs and memory guard (see ``benchmarks.hotloop``).

Each implementation maps ``weight (V, D)`` and ``ids (B, T)`` to ``(B, D)`` means over
all ``T`` positions; :func:`build` returns its forward closure and the leaf tensor
its gradient goes to, and :func:`tf_cases` runs the ``tf`` one in a subprocess.  Keras is
imported only when a Keras case is built, so that ``benchmarks._tf_hotloop`` can use
this module in a process that runs TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks import common

IMPLS = ("embedding_mean", "embeddingbag", "ours", "ours_deterministic", "ours_torch",
         "ours_compiled", "keras_eager", "keras_jit", "tf")
# Implementations that materialise the (B, T, D) rows.
NAIVE = {"embedding_mean", "ours_torch", "ours_compiled", "keras_eager", "keras_jit", "tf"}
SEED = 0
PAD_FRACTION = 0.04
TF_TIMEOUT_S = 1800
MEMORY_FRACTION = 0.6  # skip a case whose estimate exceeds this share of free memory
STEP_MEMORY_TABLES = 2  # a step also holds Adam's m and v, each of the table's size

Forward = Callable[[], torch.Tensor]


def make_inputs(shape: tuple[int, int, int, int], device: torch.device,
                seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic ids, weight and upstream gradient, the same for every implementation.

    Args:
        shape (tuple[int, int, int, int]): ``(B, T, V, D)``.
        device (torch.device): where the tensors go.
        seed (int): generator seed. Default: ``SEED``.

    Returns:
        tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ids ``(B, T)`` int64 (Zipf-like,
        ~4% zeros), weight ``(V, D)`` uniform in ±0.05, upstream ``(B, D)`` normal.
    """
    batch, length, vocab, dim = shape
    gen = torch.Generator().manual_seed(seed)
    probs = torch.arange(1, vocab, dtype=torch.float64).reciprocal()  # p(id) ~ 1/id
    ids = torch.multinomial(probs, batch * length, replacement=True, generator=gen) + 1
    ids[torch.rand(batch * length, generator=gen) < PAD_FRACTION] = 0  # padding
    weight = torch.rand(vocab, dim, generator=gen) * 0.1 - 0.05
    upstream = torch.randn(batch, dim, generator=gen)
    return ids.view(batch, length).to(device), weight.to(device), upstream.to(device)


def memory_estimate(impl: str, shape: tuple[int, int, int, int], extra_tables: int = 0) -> int:
    """Rough peak bytes of one case: the source table, the weight, its gradient(s),
    ``extra_tables`` more of the table's size, ids, and for the paths that materialise it
    a few ``(B, T, D)`` tensors."""
    batch, length, vocab, dim = shape
    # source + weight + grad (+ ours: the sink and its gradient, the squared sums)
    tables = (5 if impl.startswith("ours") else 3) + extra_tables
    rows = 3 * batch * length * dim * 4 if impl in NAIVE else 0
    return tables * vocab * dim * 4 + 3 * batch * length * 8 + rows


def free_memory(device: torch.device) -> int:
    """Free bytes: the GPU's for CUDA, else RAM (psutil, else ``/proc/meminfo``)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 1 << 62  # unknown: do not skip
    return int(psutil.virtual_memory().available)


def memory_skip(impl: str, shape: tuple[int, int, int, int], device: torch.device,
                extra_tables: int = 0) -> str | None:
    """A skip reason when the case's estimate (:func:`memory_estimate`) exceeds
    ``MEMORY_FRACTION`` of free memory."""
    need, free = memory_estimate(impl, shape, extra_tables), free_memory(device)
    if need > MEMORY_FRACTION * free:
        return (f"skipped: estimated {need / 2**30:.1f} GiB exceeds {MEMORY_FRACTION:.0%} of the "
                f"{free / 2**30:.1f} GiB free on {device.type}")
    return None


def device_skip(impl: str, device: torch.device) -> str | None:
    """A skip reason for a case that would only repeat another one on ``device``."""
    if impl == "ours_deterministic" and device.type != "cuda":
        return "skipped: on the CPU ours is always deterministic (the same case as ours)"
    return None


@contextlib.contextmanager
def torch_path() -> Iterator[None]:
    """Run the op on its pure-torch reference instead of the C or Triton kernels."""
    from embeddings import ops

    with ops.use("reference"):
        yield


def embedding_mean(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.embedding(ids, weight).mean(1)  # (B, T) -> (B, T, D) -> (B, D)


def build(impl: str, ids: torch.Tensor,
          weight: torch.Tensor) -> tuple[Forward, tuple[torch.Tensor, ...], str]:
    """One implementation's forward closure, the leaves it differentiates (the weight first;
    ours also fills its squared-gradient sink, as training does), a note.

    Args:
        impl (str): a name from ``IMPLS`` other than ``tf``.
        ids (torch.Tensor): ``(B, T)`` int64.
        weight (torch.Tensor): ``(V, D)`` values to copy into the implementation's table.

    Returns:
        tuple[Forward, tuple[torch.Tensor, ...], str]: ``forward()`` -> ``(B, D)``, the
        leaves, a note.

    Raises:
        Exception: whatever building or compiling raises; the caller records it.
    """
    note = ""
    if impl.startswith("keras"):
        from embeddings import keras_model

        keras = keras_model.keras
        vocab, dim = weight.shape
        with keras.device(keras_model.keras_device(ids.device)):
            emb = keras.layers.Embedding(vocab, dim)
            pool = keras.layers.GlobalAveragePooling1D()
            emb.build(tuple(ids.shape))
        emb.embeddings.assign(weight)
        leaf = emb.embeddings.value

        def keras_call(x: torch.Tensor) -> torch.Tensor:
            return pool(emb(x))  # (B, T) -> (B, T, D) -> (B, D)

        call = torch.compile(keras_call, dynamic=False) if impl == "keras_jit" else keras_call
        return (lambda: call(ids)), (leaf,), f"keras {keras.__version__} on torch"
    leaf = weight.clone().requires_grad_()
    if impl == "embedding_mean":
        return (lambda: embedding_mean(ids, leaf)), (leaf,), note
    if impl == "embeddingbag":
        return (lambda: F.embedding_bag(ids, leaf, mode="mean")), (leaf,), note
    if impl in ("ours", "ours_deterministic", "ours_torch"):
        from embeddings import ops
        from embeddings.ops import cpu

        if impl != "ours_torch":
            fast = (ops.dispatch.cuda_kernels() is not None if ids.device.type == "cuda"
                    else cpu.available())
            note = ("triton kernels" if ids.device.type == "cuda" else "compiled C kernels"
                    ) if fast else "no kernels here: same path as ours_torch"
        exact = impl == "ours_deterministic"
        sink = torch.zeros_like(leaf, requires_grad=True)
        return (lambda: ops.embedding_bag_mean(leaf, ids, squares=sink, deterministic=exact)
                ), (leaf, sink), note
    if impl == "ours_compiled":
        compiled = torch.compile(embedding_mean, dynamic=False)
        return (lambda: compiled(ids, leaf)), (leaf,), note
    raise ValueError(f"impl must be one of {', '.join(IMPLS)}. Received: impl={impl!r}")


def tf_cases(device: str, shapes: Sequence[str], min_run_time: float) -> dict[str, Any]:
    """Run ``benchmarks/_tf_hotloop.py`` in a subprocess of this interpreter.

    Returns:
        dict[str, Any]: ``{"results": {shape: {phase: ...}}, "checks": {...},
        "tensorflow": version}`` or ``{"skipped": why}``.
    """
    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": f"skipped: TensorFlow not installed ({sys.executable} cannot "
                           "import tensorflow)"}
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cmd = [sys.executable, "-m", "benchmarks._tf_hotloop", "--device", device,
           "--shapes", ",".join(shapes), "--min-run-time", str(min_run_time)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=common.REPO,
                              timeout=TF_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"skipped": f"skipped: TensorFlow subprocess failed: {err}"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"skipped: TensorFlow subprocess exited {proc.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result
