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
