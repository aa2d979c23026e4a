"""Fixtures of the unit tests: a seed per test and a small synthetic aclImdb tree."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from embeddings.testing import write_imdb_tree

if not torch.cuda.is_available():
    # Triton reads this when it defines its own jit functions, on its first import (which
    # torch.compile or Keras may trigger): it must be set before then, for the whole run.
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    random.seed(0)


def small_corpus() -> dict[str, bytes]:
    """A 40-review corpus with a clear signal: 'good' in pos, 'bad' in neg."""
    rng = random.Random(7)
    words = [b"movie", b"film", b"plot", b"the", b"a", b"actor", b"scene", b"story"]
    files = {}
    for cls, cue in (("neg", b"bad"), ("pos", b"good")):
        for i in range(20):
            body = b" ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
            files[f"{cls}/{i}_{rng.randint(1, 10)}.txt"] = cue + b" " + body + b"<br />" + cue
    return files


@pytest.fixture
def small_imdb(tmp_path: Path) -> Path:
    """A synthetic ``aclImdb`` folder, with the distractors a full download has."""
    base = write_imdb_tree(tmp_path, small_corpus())
    (base / "train" / "unsup").mkdir()
    (base / "train" / "unsup" / "0_0.txt").write_bytes(b"unlabelled")
    (base / "train" / "urls_neg.txt").write_bytes(b"http://example")
    (base / "imdb.vocab").write_bytes(b"the\n")
    return base


def _require(what: str) -> None:
    """Skip a test that lacks ``what``, unless ``EMBEDDINGS_REQUIRE_KERNELS=1`` (CI) makes
    that a failure."""
    if os.environ.get("EMBEDDINGS_REQUIRE_KERNELS") == "1":
        pytest.fail(f"{what} is required here (EMBEDDINGS_REQUIRE_KERNELS=1)")
    pytest.skip(f"{what} is not available")


@pytest.fixture
def cuda_kernels() -> ModuleType:
    """:mod:`embeddings.ops.cuda`, run by Triton's interpreter on CPU tensors.

    On a machine with a GPU the kernels run compiled on CUDA in the ``cuda`` cases of the
    op's tests instead, so this fixture skips there.
    """
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the Triton kernels are tested compiled, on CUDA")
    if os.environ.get("TRITON_INTERPRET") != "1":
        _require("TRITON_INTERPRET=1 (set by this conftest unless overridden)")
    try:
        from embeddings.ops import cuda
    except ImportError:
        _require("Triton (pip install triton), to check the CUDA kernels in its interpreter,")
    return cuda


def _use(path: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Pin the kernels' implementation for one test (:func:`embeddings.ops.use`)."""
    from embeddings import ops
    from embeddings.ops import cpu

    if path == "cuda":
        request.getfixturevalue("cuda_kernels")
    elif path == "cpu" and not cpu.available():
        _require("a C compiler, for the compiled CPU kernels,")
    with ops.use(path):
        yield path


@pytest.fixture(params=["cpu", "reference"])
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the compiled CPU kernels and on the pure-torch reference.

    Without a C compiler the compiled case is skipped, unless
    ``EMBEDDINGS_REQUIRE_KERNELS=1`` (CI) makes that a failure.
    """
    yield from _use(request.param, request)


@pytest.fixture(params=["cpu", "cuda", "reference"])
def bag_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a kernel test on each of the three implementations: the compiled CPU kernels,
    the Triton kernels (interpreted, on CPU tensors) and the torch reference."""
    yield from _use(request.param, request)


@pytest.fixture(params=["compiled", "arrow"])
def text_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a vectorizer test on the compiled text kernels and on the Arrow formulation.

    Without a C compiler the compiled case is skipped, unless
    ``EMBEDDINGS_REQUIRE_KERNELS=1`` (CI) makes that a failure.
    """
    from embeddings.text import native

    if request.param == "arrow":
        monkeypatch.setattr(native, "available", lambda: False)
    elif not native.available():
        _require("a C compiler, for the compiled text kernels,")
    return str(request.param)
