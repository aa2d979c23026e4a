"""Fixtures shared by ``tests/`` and ``parity_tests/``: the real IMDb reviews.

They read ``EMBEDDINGS_DATA`` (CI points it at the shared archive) or the
default sources.  When the data cannot be found they *fail* with the loader's
message, which says how to point at a local copy: a missing data set must never
pass as a skip.
"""

from __future__ import annotations

import pytest

from embeddings import data


@pytest.fixture(scope="session")
def imdb_reviews() -> list[data.Review]:
    """The 25,000 labelled training reviews in sorted-walk order."""
    reviews, _ = data.read_source()
    return reviews


@pytest.fixture(scope="session")
def imdb_splits() -> data.Splits:
    """The tutorial's subsets, in epoch order, with their source (what backends train on)."""
    return data.load_splits()


@pytest.fixture(scope="session")
def imdb_split(imdb_splits: data.Splits):  # type: ignore[no-untyped-def]
    """The tutorial's (train, val) datasets, in epoch order."""
    return imdb_splits.train, imdb_splits.val
