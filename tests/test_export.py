"""Projector TSVs in the tutorial's exact format, and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.export import write_projector_tsv
from embeddings.files import atomic_write_bytes


def test_tsv_rows_skip_padding_and_print_numpy_float32(tmp_path: Path) -> None:
    table = np.array([[9.0, 9.0], [0.1, -0.012345678], [1e-5, 1e16], [0.0, -0.0]],
                     dtype=np.float32)
    write_projector_tsv(table, ["", "[UNK]", "the", "café"], tmp_path)
    assert (tmp_path / "vectors.tsv").read_bytes() == (
        b"0.1\t-0.012345678\n1e-05\t1e+16\n0.0\t-0.0\n")
    assert (tmp_path / "metadata.tsv").read_bytes() == "[UNK]\nthe\ncafé\n".encode()


def test_values_round_trip_to_the_same_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = (rng.standard_normal((50, 16)) * 10.0 ** rng.uniform(-8, 1, (50, 16))).astype(
        np.float32)
    write_projector_tsv(table, [str(i) for i in range(50)], tmp_path)
    lines = (tmp_path / "vectors.tsv").read_text().splitlines()
    back = np.array([[np.float32(x) for x in line.split("\t")] for line in lines])
    assert np.array_equal(back, table[1:])


def test_invalid_utf8_tokens_are_written_as_their_bytes(tmp_path: Path) -> None:
    token = b"caf\xe9".decode("utf-8", "surrogateescape")
    write_projector_tsv(np.zeros((2, 1), np.float32), ["", token], tmp_path)
    assert (tmp_path / "metadata.tsv").read_bytes() == b"caf\xe9\n"


def test_table_smaller_than_vocabulary_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights.shape"):
        write_projector_tsv(np.zeros((2, 3), np.float32), ["", "a", "b"], tmp_path)


def test_atomic_write_replaces_whole_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600
