"""Atomic writes: a file appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings.files import atomic_file, atomic_write_bytes


def test_atomic_write_replaces_whole_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_a_file_written_in_pieces_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half of the n")
        assert target.read_bytes() == b"old"  # nothing shows while it is written
        raise RuntimeError("stopped halfway")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    with atomic_file(target) as f:
        f.write(b"new, ")
        f.write(b"in two pieces")
    assert target.read_bytes() == b"new, in two pieces"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_sweep_removes_only_staging_whose_owner_is_gone(tmp_path: Path) -> None:
    """A claim held by a live process is reported, one whose process was killed is removed."""
    import signal
    import subprocess
    import sys

    from embeddings.files import claim, holder_pid, sweep

    code = ("import sys, time; from pathlib import Path; from embeddings.files import claim; "
            f"c = claim(Path({str(tmp_path)!r}), '.job.partial-'); print(c.path, flush=True); "
            "time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        held = Path(child.stdout.readline().strip()) if child.stdout else Path()
        mine = claim(tmp_path, ".job.partial-")
        (tmp_path / ".other.partial-1").mkdir()  # another prefix: not ours to judge
        assert sweep(tmp_path, ".job.partial-") == [held, mine.path]  # oldest first
        assert holder_pid(held) == child.pid
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert sweep(tmp_path, ".job.partial-") == [mine.path]
    assert not held.exists() and (tmp_path / ".other.partial-1").is_dir()
    mine.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-1"]
