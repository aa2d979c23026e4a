"""Parity fixtures: TensorFlow's recorded outputs (``fixtures/``, or ``$EMBEDDINGS_FIXTURES``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(os.environ.get("EMBEDDINGS_FIXTURES") or Path(__file__).parent / "fixtures")


def load_fixture(name: str) -> Any:
    path = FIXTURES / name
    if not path.exists():
        raise FileNotFoundError(
            f"TensorFlow reference {path} is missing: run "
            "`python parity_tests/reference/make_reference.py --data PATH` with the tf extra"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tf_text() -> Any:
    """Split, vocabulary and sequence hashes recorded from TensorFlow."""
    return load_fixture("tutorial_text.json")


@pytest.fixture(scope="session")
def tf_history() -> Any:
    """Per-epoch histories of the seeded tutorial runs recorded from TensorFlow."""
    return load_fixture("tutorial_history.json")
