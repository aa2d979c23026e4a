"""The command-line error policy: a caller's mistake is one line and exit 2, a bug a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embeddings.errors import InvalidInput, MissingExtra, UsageError, cli


def test_a_usage_error_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise InvalidInput("Could not find it. Tried:\n- here: no\n- there: no\nPoint at a copy.")

    assert cli(body) == 2
    assert capsys.readouterr().err == (
        "error: Could not find it. Tried: - here: no - there: no Point at a copy.\n")


def test_the_error_types_are_also_the_builtin_ones() -> None:
    assert issubclass(InvalidInput, ValueError) and issubclass(InvalidInput, UsageError)
    assert issubclass(MissingExtra, ImportError)


def test_a_bug_keeps_its_traceback() -> None:
    """Only caller mistakes are turned into messages: a RuntimeError or an ImportError
    from a bug propagates, so its traceback shows."""
    for bug in (RuntimeError("internal"), ImportError("internal"), KeyError("x")):
        def body(err: Exception = bug) -> int:
            raise err

        with pytest.raises(type(bug)):
            cli(body)


def test_every_tool_reports_a_usage_error_in_one_line() -> None:
    """The three command lines share the policy (each run as a user runs it)."""
    for argv, phrase in (
        (["embeddings.train", "--data", "/no/such/data", "--device", "cpu"], "does not exist"),
        (["embeddings.predict", "--run", "/no/such/run", "x"], "is not a run directory"),
        (["embeddings.convert", "/no/such.keras", "/tmp/never"], "No Keras file"),
    ):
        proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.startswith("error: ") and phrase in proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_the_environment_refusing_a_path_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """No permission or a full disk is the caller's machine, not a bug: one line, exit 2.
    Other OSErrors (an I/O error, say) keep their traceback."""
    import errno

    def denied() -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/runs/x")

    assert cli(denied) == 2
    assert capsys.readouterr().err == (
        "error: cannot write or read /srv/runs/x: Permission denied. Use a path you can write "
        "to, on a disk with free space.\n")

    def io_error() -> int:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError):
        cli(io_error)


def test_running_out_of_memory_and_ctrl_c_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def oom() -> int:
        raise MemoryError

    def ctrl_c() -> int:
        raise KeyboardInterrupt

    assert cli(oom) == 2
    assert capsys.readouterr().err.startswith("error: out of memory. Use smaller sizes")
    assert cli(ctrl_c) == 130
    assert capsys.readouterr().err.startswith("interrupted by SIGINT: stopped;")
