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


_EXITING = """
import atexit, sys, threading, time
from embeddings.errors import exit_now

class Teardown:
    def __del__(self):
        print("torn down", file=sys.stderr)

kept = Teardown()  # freed only by the interpreter's teardown
atexit.register(lambda: print("atexit ran", file=sys.stderr))
print("x" * 300_000, end="")  # more than a pipe holds: must be flushed, not lost
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread ended", file=sys.stderr)),
                     daemon=False).start()
exit_now(int(sys.argv[2]))
"""


@pytest.mark.parametrize("status", [0, 3])
def test_a_command_line_exits_without_the_teardown(status: int) -> None:
    """``exit_now`` keeps the status, the atexit handlers and every byte written, and
    skips the interpreter's teardown (the object freed there never is)."""
    proc = subprocess.run([sys.executable, "-c", _EXITING, "plain", str(status)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == status
    assert proc.stdout == "x" * 300_000
    assert proc.stderr == "atexit ran\n"


def test_a_running_thread_keeps_the_normal_exit() -> None:
    """A thread that is not a daemon is waited for, as a normal exit does, and then the
    teardown runs too."""
    proc = subprocess.run([sys.executable, "-c", _EXITING, "thread", "4"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 4
    assert proc.stdout == "x" * 300_000
    assert proc.stderr.splitlines() == ["thread ended", "atexit ran", "torn down"]
