"""The command-line error policy shared by every tool.

A caller's mistake (a bad flag value, a missing or malformed file, a missing optional
extra, a device that is not there) raises a :class:`UsageError`; every command line
runs under :func:`cli`, which prints such an error as one line, ``error: <message>``,
and exits with status 2.  The message names the input and the fix.  Anything else is
a bug and keeps its traceback.  The subclasses also derive from the built-in type a
library caller would catch (``ValueError``, ``ImportError``, ...).  No torch here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(Exception):
    """A caller's mistake; the message names the input and the fix."""


class InvalidInput(UsageError, ValueError):
    """A value, file or folder that cannot be used as given."""


class MissingFile(UsageError, FileNotFoundError):
    """A file or folder the caller named does not exist."""


class MissingExtra(UsageError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""


class Unavailable(UsageError, RuntimeError):
    """What was asked for cannot run here: a device that is absent, a conflicting
    ``KERAS_BACKEND``, a library already loaded on another backend."""


def one_line(message: str) -> str:
    """``message`` with its lines joined, so that an error prints as one line."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def cli(main: Callable[[], int]) -> int:
    """Run a command line's body: a :class:`UsageError` becomes ``error: ...`` on stderr
    and exit status 2; any other exception propagates with its traceback.

    Args:
        main (Callable[[], int]): the body, returning the exit status.

    Returns:
        int: the exit status.
    """
    try:
        return main()
    except UsageError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
