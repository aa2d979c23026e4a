"""Atomic writes: a file appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

from embeddings.files import atomic_write_bytes


def test_atomic_write_replaces_whole_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600
