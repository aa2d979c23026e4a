"""Fixtures of the unit tests: a seed per test and a small synthetic aclImdb tree."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from embeddings.testing import write_imdb_tree


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


@pytest.fixture(params=["compiled", "torch"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the compiled CPU kernels and on the pure-torch formulation.

    Without a C compiler the compiled case is skipped, unless
    ``EMBEDDINGS_REQUIRE_KERNELS=1`` (CI) makes that a failure.
    """
    from embeddings import kernels

    if request.param == "torch":
        monkeypatch.setattr(kernels, "available", lambda: False)
    elif not kernels.available():
        if os.environ.get("EMBEDDINGS_REQUIRE_KERNELS") == "1":
            pytest.fail("the compiled CPU kernels could not be built (is a C compiler there?)")
        pytest.skip("no C compiler: the compiled CPU kernels are unavailable")
    return str(request.param)
