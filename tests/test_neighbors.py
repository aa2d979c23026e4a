"""Cosine nearest neighbours and analogies from a run's table, and their command line."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings import neighbors, runs, train
from embeddings.config import RunConfig
from embeddings.errors import InvalidInput
from embeddings.model import keras_initial_weights
from embeddings.testing import TINY_TRAIN_FLAGS, assert_close, cli_error


def _write(out: Path, table: list[list[float]], vocabulary: list[str]) -> Path:
    """A run whose ``(8, 3)`` embedding table is ``table``, its other weights Keras's."""
    arrays = keras_initial_weights(8, 3, 2, seed=0)
    arrays["embedding.embeddings"] = np.array(table, dtype=np.float32)
    settings = RunConfig.from_dict({"text": {"vocab_size": 8}, "model": {"embedding_dim": 3,
                                                                        "hidden_units": 2}})
    with runs.staged(out) as staging:
        runs.write_run(staging, weights=arrays, vocabulary=vocabulary,
                       config=runs.run_config(settings, {"backend": "torch"}), history={})
    return out


# Unit vectors: man = e1, woman = e2, king = (e1 + e3) / sqrt 2, queen = (e2 + e3) / sqrt 2.
# The padding row points exactly at the answer and row 7 (past the vocabulary) too: neither
# may be returned.  'zero' has no cosine.
ROYAL = ["", "[UNK]", "man", "woman", "king", "queen", "zero"]
ROYAL_TABLE = [[0, 5, 5], [-1, 0, 0.5], [2, 0, 0], [0, 3, 0], [1, 0, 1], [0, 4, 4], [0, 0, 0],
               [0, 1, 1]]


@pytest.fixture
def royal(tmp_path: Path) -> Path:
    return _write(tmp_path / "royal", ROYAL_TABLE, ROYAL)


@pytest.fixture
def tiny_run(small_imdb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "tiny"
    assert train.main([*TINY_TRAIN_FLAGS, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "embeddings.neighbors", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_neighbours_equal_brute_force_cosine_over_vectors_tsv(tiny_run: Path) -> None:
    words = (tiny_run / "metadata.tsv").read_text().splitlines()  # row i is id i + 1
    rows = [[float(np.float32(x)) for x in line.split("\t")]
            for line in (tiny_run / "vectors.tsv").read_text().splitlines()]
    assert len(words) == len(rows) == len(runs.load_run(tiny_run).vocabulary) - 1 >= 10

    def cosine(u: list[float], v: list[float]) -> float:
        dot = sum(x * y for x, y in zip(u, v, strict=True))
        return dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))

    index = neighbors.NeighborIndex(tiny_run)
    for q, word in enumerate(words):
        brute = sorted((-cosine(rows[q], rows[i]), i) for i in range(len(rows)) if i != q)
        found = index.nearest(word, k=100)  # clipped to the other tokens
        assert [t for t, _ in found] == [words[i] for _, i in brute]
        assert_close([s for _, s in found], [-s for s, _ in brute], rtol=0, atol=1e-12)
    assert neighbors.nearest(tiny_run, words[3], k=5) == index.nearest(words[3], k=5)


def test_padding_rows_past_the_vocabulary_and_zero_rows_are_never_neighbours(
        royal: Path) -> None:
    found = neighbors.nearest(royal, "queen", k=10)
    # woman: 1/sqrt 2; king: 1/2; [UNK] = (-1, 0, 0.5): 0.5 / sqrt 2.5; man: 0.
    assert [t for t, _ in found] == ["woman", "king", "[UNK]", "man"]
    assert_close([s for _, s in found], [1 / math.sqrt(2), 0.5, 0.5 / math.sqrt(2.5), 0.0],
                 rtol=0, atol=1e-15)


def test_ties_are_broken_by_id(tmp_path: Path) -> None:
    vocabulary = ["", "[UNK]", "a", "b", "c", "d", "e"]
    table = [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 2], [2, 0, 0], [3, 0, 0], [0, 0, 1],
             [1, 0, 0]]
    run = _write(tmp_path / "ties", table, vocabulary)
    assert neighbors.nearest(run, "a", k=10) == [
        ("c", 1.0), ("d", 1.0), ("[UNK]", 0.0), ("b", 0.0), ("e", 0.0)]
    assert neighbors.nearest(run, "a", k=1) == [("c", 1.0)]


def test_a_zero_vector_has_no_neighbours(royal: Path) -> None:
    with pytest.raises(InvalidInput, match="'zero' is all zeros"):
        neighbors.nearest(royal, "zero")


def test_analogy_finds_the_known_answer_and_excludes_its_words(royal: Path) -> None:
    found = neighbors.analogy(royal, "man", "woman", "king", k=2)
    target = np.array([0, 1, 0]) - np.array([1, 0, 0]) + np.array([1, 0, 1]) / math.sqrt(2)
    queen = np.array([0, 1, 1]) / math.sqrt(2)
    unk = np.array([-1, 0, 0.5]) / math.sqrt(1.25)
    norm = float(np.linalg.norm(target))
    assert [t for t, _ in found] == ["queen", "[UNK]"]
    assert_close([s for _, s in found], [target @ queen / norm, target @ unk / norm],
                 rtol=0, atol=1e-15)
    # Without excluding them, woman (0.79) would come between queen (0.96) and [UNK] (0.46).
    assert "woman" not in dict(neighbors.analogy(royal, "man", "woman", "king", k=10))


def test_query_is_standardized_like_the_vectorizer(royal: Path) -> None:
    index = neighbors.NeighborIndex(royal)
    assert index.lookup("Queen!") == index.lookup("queen") == 5
    assert index.lookup("[UNK]") == 1  # a token of the vocabulary is taken as it is
    assert index.nearest("QUEEN", k=3) == index.nearest("queen", k=3)


def test_k_below_one_is_refused(royal: Path) -> None:
    with pytest.raises(InvalidInput, match="k=0"):
        neighbors.nearest(royal, "queen", k=0)
    err = cli_error(["embeddings.neighbors", "--run", str(royal), "queen", "-k", "0"])
    assert "k=0" in err and "-k 1 or more" in err


def test_unknown_word_is_an_error_naming_close_spellings(tmp_path: Path) -> None:
    vocabulary = ["", "[UNK]", "beautiful", "beautifully", "beauty", "awful", "film"]
    table = np.random.default_rng(0).standard_normal((8, 3)).tolist()
    run = _write(tmp_path / "words", table, vocabulary)
    err = cli_error(["embeddings.neighbors", "--run", str(run), "Beautifull"])
    assert "'Beautifull' (looked up as 'beautifull')" in err
    assert "did you mean: beautifully, beautiful, beauty?"  # closest first in err
    err = cli_error(["embeddings.neighbors", "--run", str(run), "xqzj"])
    assert "'xqzj' is not in the vocabulary" in err and "no word in it is spelled closely" in err
    with pytest.raises(InvalidInput, match="did you mean: awful"):
        neighbors.analogy(run, "awfull", "film", "beauty")


def test_cli_prints_a_tab_separated_line_per_neighbour(royal: Path) -> None:
    proc = _run_cli("--run", str(royal), "queen", "-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "woman\t0.707107\nking\t0.500000\n" and proc.stderr == ""


def test_cli_heads_each_query_when_there_are_several(royal: Path) -> None:
    proc = _run_cli("--run", str(royal), "Queen", "man", "-k", "1",
                    "--analogy", "man", "woman", "king")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "# queen", "woman\t0.707107", "# man", "king\t0.707107",
        "# woman - man + king", "queen\t0.958569"]
    assert proc.stderr == ("note: 'Queen' is looked up as 'queen', as the run's vectorizer "
                           "standardizes text\n")
