"""Tests of ``embeddings/native.py``: the kernel cache loads only libraries it built itself.

Each test compiles a tiny C source (``add(a, b)``) with a fresh :class:`NativeLibrary` and a
cache in ``tmp_path``.  A planted library exports the same ``add`` but returns ``a - b``
and, through a constructor, writes a marker file the moment it is loaded: a test that
finds no marker and ``add(2, 3) == 5`` knows the planted code never ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from embeddings import native
from embeddings.native import NativeLibrary

TINY = b"#include <stdint.h>\nint64_t add(int64_t a, int64_t b) { return a + b; }\n"

PLANTED = """#include <stdint.h>
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(%s, "w");
    if (f) { fputs("the planted library ran", f); fclose(f); }
}
int64_t add(int64_t a, int64_t b) { return a - b; }
"""

SIGNATURES: dict[str, native.Signature] = {"add": ("ii", "i")}


@pytest.fixture
def compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``CC`` that counts its calls (one line each in the returned file) and runs ``cc``."""
    cc = shutil.which("cc")
    if cc is None:
        if os.environ.get("EMBEDDINGS_REQUIRE_KERNELS") == "1":
            pytest.fail("a C compiler (cc) is required here (EMBEDDINGS_REQUIRE_KERNELS=1)")
        pytest.skip("no C compiler (cc): the kernel cache cannot be exercised")
    calls = tmp_path / "cc-calls"
    wrapper = tmp_path / "cc-counting"
    wrapper.write_text(f'#!/bin/sh\necho call >> "{calls}"\nexec "{cc}" "$@"\n')
    wrapper.chmod(0o700)
    calls.touch()
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMBEDDINGS_KERNELS", raising=False)
    return calls


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "tiny" / "kernels.c"
    path.parent.mkdir()
    path.write_bytes(TINY)
    return path


def _plant(tmp_path: Path, target: Path) -> Path:
    """Compile the planted library to ``target``; returns the marker it writes when loaded."""
    marker = tmp_path / "planted-library-ran"
    code = tmp_path / "planted.c"
    code.write_text(PLANTED % json.dumps(str(marker)))
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(target), str(code)], check=True)
    return marker


def _record(library: Path, *, source_sha256: str, library_bytes: bytes) -> None:
    library.with_name(library.name + ".json").write_text(json.dumps({
        "source_sha256": source_sha256,
        "library_sha256": hashlib.sha256(library_bytes).hexdigest()}))


def _source_key(source: Path) -> str:
    """The full key the record must hold, as :func:`native.cached_library` abbreviates it."""
    key = native._source_key(source, os.environ["CC"])
    assert native.cached_library(source).name == f"tiny-{key[:16]}.so"
    return key


def _build_elsewhere(source: Path) -> None:
    """Compile and load ``source`` in another process, as an earlier run would have.

    Not in this one: the dynamic loader would then answer a later load of the same path
    with the library it already holds, whatever the file has become.
    """
    code = ("import sys; from pathlib import Path; from embeddings.native import NativeLibrary; "
            f"sys.exit(NativeLibrary(Path(sys.argv[1]), {SIGNATURES!r}).call('add', 2, 3) - 5)")
    subprocess.run([sys.executable, "-c", code, str(source)], check=True,
                   cwd=Path(__file__).parents[1])


def _fresh(source: Path) -> NativeLibrary:
    return NativeLibrary(source, SIGNATURES)


def _calls(calls: Path) -> int:
    return len(calls.read_text().splitlines())


def test_compiled_once_then_loaded_from_the_cache(compiler: Path, source: Path) -> None:
    assert _fresh(source).call("add", 2, 3) == 5
    built = _calls(compiler)
    assert built >= 1  # -fopenmp, and once more without it if the compiler refuses it
    library = native.cached_library(source)
    folder = library.parent
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700
    assert stat.S_IMODE(library.lstat().st_mode) & (stat.S_IWGRP | stat.S_IWOTH) == 0
    record = json.loads(library.with_name(library.name + ".json").read_text())
    assert record == {"source_sha256": _source_key(source),
                      "library_sha256": hashlib.sha256(library.read_bytes()).hexdigest()}
    mtime = library.stat().st_mtime_ns

    assert _fresh(source).call("add", 40, 2) == 42
    assert _calls(compiler) == built  # the compiler was not run again
    assert library.stat().st_mtime_ns == mtime


def test_changed_source_is_compiled_again(compiler: Path, source: Path) -> None:
    assert _fresh(source).call("add", 2, 3) == 5
    built = _calls(compiler)
    source.write_bytes(TINY.replace(b"a + b", b"a + b + 1"))
    assert _fresh(source).call("add", 2, 3) == 6
    assert _calls(compiler) > built


def test_planted_library_at_the_predictable_path_is_not_loaded(
        compiler: Path, source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = native.cached_library(source)
    marker = _plant(tmp_path, target)
    target.parent.chmod(0o700)
    with caplog.at_level(logging.WARNING, logger="embeddings.native"):
        assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()
    assert f"not loading {target}" in caplog.text and ".json is missing" in caplog.text
    assert _calls(compiler) >= 1  # compiled again, over the planted file
    assert hashlib.sha256(target.read_bytes()).hexdigest() == json.loads(
        target.with_name(target.name + ".json").read_text())["library_sha256"]


@pytest.mark.parametrize("forgery", ["library swapped after the build",
                                     "record of another source"])
def test_library_not_matching_its_record_is_not_loaded(
        compiler: Path, source: Path, tmp_path: Path, forgery: str) -> None:
    target = native.cached_library(source)
    if forgery == "library swapped after the build":
        _build_elsewhere(source)  # a genuine library and record, from another process
        marker = _plant(tmp_path, target)  # then the library alone is replaced
    else:  # the record matches the planted bytes, but not the source's key
        marker = _plant(tmp_path, target)
        target.parent.chmod(0o700)
        _record(target, source_sha256=hashlib.sha256(b"another source").hexdigest(),
                library_bytes=target.read_bytes())
    assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()


def _plant_with_matching_record(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A planted library at the cached path, in a folder that passes, with a record that
    matches it; returns the library and its constructor's marker."""
    target = native.cached_library(source)
    marker = _plant(tmp_path, target)
    target.parent.chmod(0o700)
    _record(target, source_sha256=_source_key(source), library_bytes=target.read_bytes())
    return target, marker


def test_planted_library_with_a_matching_record_would_load(
        compiler: Path, source: Path, tmp_path: Path) -> None:
    # The negative twin of the two tests above: the same planting with a record that matches
    # both, in a folder that passes, loads (the marker appears). So the record check is what
    # stops them, and the marker would show a load.
    target, marker = _plant_with_matching_record(source, tmp_path)
    assert _fresh(source).call("add", 2, 3) == -1
    assert marker.exists()


def test_group_writable_or_linked_library_is_not_loaded(
        compiler: Path, source: Path, tmp_path: Path) -> None:
    target, marker = _plant_with_matching_record(source, tmp_path)
    target.chmod(0o775)
    assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()

    # A link to a planted library that carries a matching record of its own name.
    elsewhere = tmp_path / "elsewhere.so"
    marker = _plant(tmp_path, elsewhere)
    target.unlink()
    target.symlink_to(elsewhere)
    _record(target, source_sha256=_source_key(source), library_bytes=elsewhere.read_bytes())
    assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()
    assert not target.is_symlink()  # replaced by a fresh build


def _planted_with_valid_record(tmp_path: Path, source: Path, folder: Path) -> tuple[Path, Path]:
    """A planted library in ``folder`` that passes every check except the folder's own."""
    target = folder / native.cached_library(source).name
    marker = _plant(tmp_path, target)
    _record(target, source_sha256=_source_key(source), library_bytes=target.read_bytes())
    return target, marker


def test_world_writable_kernels_folder_is_not_loaded_from(
        compiler: Path, source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = native.cached_library(source).parent
    target, marker = _planted_with_valid_record(tmp_path, source, folder)
    folder.chmod(0o777)
    before = sorted(p.name for p in folder.iterdir())
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with caplog.at_level(logging.WARNING, logger="embeddings.native"):
        assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()
    assert "writable by group or others (mode 777)" in caplog.text
    assert "private folder" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written there
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777  # and nothing changed
    assert list(private.iterdir()) == []  # the private folder is gone once loaded


def test_symlinked_kernels_folder_is_not_trusted(
        compiler: Path, source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    target, marker = _planted_with_valid_record(tmp_path, source, elsewhere)
    folder = native.cached_library(source).parent
    folder.parent.mkdir(parents=True)
    folder.symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="embeddings.native"):
        assert _fresh(source).call("add", 2, 3) == 5
    assert not marker.exists()
    assert "is a symbolic link" in caplog.text
    assert sorted(p.name for p in elsewhere.iterdir()) == [target.name, target.name + ".json"]


def test_kernels_disabled_never_compile(compiler: Path, source: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDINGS_KERNELS", "0")
    assert not _fresh(source).available()
    assert _calls(compiler) == 0


def test_missing_compiler_falls_back(compiler: Path, source: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    library = _fresh(source)
    assert not library.available()
    with pytest.raises(RuntimeError, match="kernels.c are not available"):
        library.call("add", 2, 3)
