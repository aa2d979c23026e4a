"""Ctrl-C and SIGTERM: stop cleanly, at a step boundary, and say so.

Every command line runs its body under :func:`signals_raise` (through
:func:`embeddings.errors.cli`): SIGINT and SIGTERM then raise :class:`Interrupted`, a
``BaseException`` like ``KeyboardInterrupt``, so ``except Exception`` never swallows it
while every ``finally`` and staging context on the way out still runs (unfinished files
and folders are removed; finished ones stay).  The CLI prints one line and exits with
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports a killed command.

A training step is never cut in half: between :func:`hold` and :func:`release` a signal
is only recorded, and :func:`release` raises it once the step is complete; a run that
checkpoints saves its state there and sets :attr:`Interrupted.resume`.  Outside held
regions the exception is raised at once.  This module imports no torch.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process got SIGINT or SIGTERM.

    Args:
        signum (int): the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.resume: str | None = None  # the command that continues a checkpointed run

    @property
    def name(self) -> str:
        """``"SIGINT"`` or ``"SIGTERM"``."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class _State:
    held = 0  # nesting depth of hold()
    pending: int | None = None  # a signal that arrived while held


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.held:
        _State.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (deferred to the
    end of a held step).  Only the main thread can install handlers; elsewhere the block
    runs with the handlers it has."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {s: signal.signal(s, _handler) for s in SIGNALS}
    _State.held, _State.pending = 0, None
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _State.held, _State.pending = 0, None


def hold() -> None:
    """Start a step that a signal must not cut in half."""
    _State.held += 1


def release() -> None:
    """End a step begun with :func:`hold`; raise a signal that arrived during it.

    Raises:
        Interrupted: SIGINT or SIGTERM arrived while the step ran.
    """
    _State.held = max(0, _State.held - 1)
    if not _State.held and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        raise Interrupted(signum)


def take_pending() -> int | None:
    """The signal recorded while held, if any, now forgotten (the caller acts on it)."""
    signum, _State.pending = _State.pending, None
    return signum


@contextlib.contextmanager
def step() -> Iterator[None]:
    """:func:`hold` for the block, then :func:`release`."""
    hold()
    try:
        yield
    except BaseException:
        _State.held = max(0, _State.held - 1)  # already unwinding: let that error through
        raise
    release()
