"""Helpers for this project's tests and for users who test their own ports.

* :func:`assert_close`: the one comparison, always with explicit tolerances.
* :func:`write_imdb_tree`: a small ``aclImdb``-shaped folder for tests that must
  not depend on the real data.
* :func:`tensorflow_python`: an interpreter that imports TensorFlow, for the tests
  that compare with it in a subprocess.
* :func:`cli_error` and :func:`tree_state`: run a command line as a user does and
  check that a mistake gets one short message, exit 2, and changes nothing.
* :func:`make_tarball`, :func:`train_cli` and :func:`assert_refused`: IMDb archives and
  tiny training runs for the data and download tests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def assert_close(actual: Any, expected: Any, *, rtol: float, atol: float) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise.

    Args:
        actual (Any): tensor, array or number.
        expected (Any): same shape as ``actual``.
        rtol (float): relative tolerance (no default: every caller states it).
        atol (float): absolute tolerance (no default).
    """
    torch.testing.assert_close(_tensor(actual), _tensor(expected), rtol=rtol, atol=atol,
                               check_dtype=False)


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.as_tensor(np.asarray(x))


def write_imdb_tree(root: str | os.PathLike[str], files: Mapping[str, bytes | str]) -> Path:
    """Create ``root/aclImdb/train/...`` with ``files`` (``{"neg/1_2.txt": text}``).

    Returns:
        Path: the ``aclImdb`` folder.
    """
    base = Path(root) / "aclImdb"
    for rel, content in files.items():
        path = base / "train" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return base


def find_tensorflow(python: str | None = None) -> tuple[str, dict[str, str], bool]:
    """An interpreter for TensorFlow, the environment to run it in, and whether it imports
    TensorFlow (an interpreter that does not exist does not).

    The interpreter is ``python``, else ``$EMBEDDINGS_TF_PYTHON``, else this one.  The
    environment is this one without ``KERAS_BACKEND``: a process may run Keras on torch,
    and TensorFlow aborts on import under that setting.

    Returns:
        tuple[str, dict[str, str], bool]: the interpreter, the environment, and whether
        TensorFlow imports there.
    """
    python = python or os.environ.get("EMBEDDINGS_TF_PYTHON") or sys.executable
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    try:
        found = subprocess.run([python, "-c", "import tensorflow"], capture_output=True,
                               env=env, check=False).returncode == 0
    except OSError:  # no such interpreter
        found = False
    return python, env, found


def tensorflow_python() -> tuple[str, dict[str, str]]:
    """:func:`find_tensorflow`'s interpreter and environment for a test.  Without
    TensorFlow the calling test is skipped, or fails where ``EMBEDDINGS_REQUIRE_TF`` is set
    (``nox -s parity_live``).

    Returns:
        tuple[str, dict[str, str]]: the interpreter and the environment.
    """
    import pytest

    python, env, found = find_tensorflow()
    if not found:
        message = (f"needs TensorFlow (the tf extra: pip install '.[tf]') in {python} or "
                   "EMBEDDINGS_TF_PYTHON")
        if os.environ.get("EMBEDDINGS_REQUIRE_TF"):
            pytest.fail(message)
        pytest.skip(message)
    return python, env


def cli_error(argv: list[str], *, env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike[str] | None = None, stdin: str | None = None,
              timeout: float = 300) -> str:
    """Run ``python -m <argv>`` and assert the error policy for a caller's mistake: exit
    status 2, a message of at most three lines at the end of standard error that starts
    with ``error:`` (or, from the flag parser, ``<prog>: error:``), and no traceback.

    Args:
        argv (list[str]): the module and its arguments, e.g. ``["embeddings.train", ...]``.
        env (Mapping[str, str] | None): extra environment variables. Default: ``None``.
        cwd (str | os.PathLike | None): working folder. Default: ``None`` (this one).
        stdin (str | None): text for standard input. Default: ``None`` (empty).
        timeout (float): seconds before the test fails. Default: ``300``.

    Returns:
        str: the message.
    """
    proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, input=stdin or "",
                          timeout=timeout, check=False)
    err = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}: {err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip("\n").splitlines()  # progress lines may come before the message
    first = [i for i, line in enumerate(lines)
             if line.startswith("error: ") or ": error: " in line]
    assert first, err
    assert len(lines) - first[0] <= 3, err
    return "\n".join(lines[first[0]:])


def tree_state(root: str | os.PathLike[str]) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones included) with a digest of its
    bytes, to show that a failed command changed nothing."""
    root = Path(root)
    state = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or not path.is_file():
            state[rel] = "dir" if path.is_dir() else "other"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


# The training command line on a small corpus -----------------------------------------------

TINY_TRAIN_FLAGS = ["--epochs", "1", "--batch-size", "8", "--vocab-size", "20",
                    "--sequence-length", "8", "--device", "cpu"]


def make_tarball(base: str | os.PathLike[str], target: str | os.PathLike[str], *,
                 gzip: bool = True) -> bytes:
    """Pack an ``aclImdb`` folder like the original archive, its members under ``aclImdb/``.

    Args:
        base (str | os.PathLike): the ``aclImdb`` folder (see :func:`write_imdb_tree`).
        target (str | os.PathLike): the archive to write.
        gzip (bool): compress it with gzip, else write a plain tar. Default: ``True``.

    Returns:
        bytes: the archive's bytes.
    """
    with tarfile.open(target, "w:gz" if gzip else "w") as tar:
        tar.add(base, arcname="aclImdb")
    return Path(target).read_bytes()


def _train_command(data: str, root: Path,
                   env: Mapping[str, str] | None) -> tuple[list[str], dict[str, str]]:
    """The module and arguments of :func:`train_cli`, and its extra environment; makes
    ``root/runs``."""
    (root / "runs").mkdir(exist_ok=True)
    argv = ["embeddings.train", "--data", data, *TINY_TRAIN_FLAGS,
            "--out", str(root / "runs" / "run")]
    # An empty EMBEDDINGS_DATA counts as unset.
    extra = {"EMBEDDINGS_DATA": "", "EMBEDDINGS_CACHE": str(root / "cache"), **(env or {})}
    return argv, extra


def train_cli(data: str, root: Path, *, timeout: float = 180,
              env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m embeddings.train --data DATA`` with :data:`TINY_TRAIN_FLAGS`,
    ``--out root/runs/run``, ``EMBEDDINGS_CACHE=root/cache`` and no ``EMBEDDINGS_DATA``.

    Args:
        data (str): the ``--data`` argument.
        root (Path): the folder for ``runs/`` and ``cache/`` (a test's ``tmp_path``).
        timeout (float): seconds before the test fails. Default: ``180``.
        env (Mapping[str, str] | None): more environment variables. Default: ``None``.

    Returns:
        subprocess.CompletedProcess[str]: the finished process, its output captured.
    """
    argv, extra = _train_command(data, root, env)
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          env={**os.environ, **extra}, timeout=timeout, check=False)


def assert_refused(data: str, named: str, root: Path, *, timeout: float = 180,
                   env: Mapping[str, str] | None = None) -> str:
    """Run :func:`train_cli`'s command and assert that it refuses ``data``: the error
    policy of :func:`cli_error`, a message that names ``named`` and fits three lines of a
    terminal without it (240 characters), and nothing left behind: no run (nor its hidden
    staging) in ``root/runs``, no cache entry or download staging in ``root/cache/imdb``.

    Args:
        data (str): the ``--data`` argument.
        named (str): what the message must name (the path, URL or member at fault).
        root (Path): the folder for ``runs/`` and ``cache/`` (a test's ``tmp_path``).
        timeout (float): seconds before the test fails. Default: ``180``.
        env (Mapping[str, str] | None): more environment variables. Default: ``None``.

    Returns:
        str: the message.
    """
    argv, extra = _train_command(data, root, env)
    err = cli_error(argv, env=extra, timeout=timeout)
    assert named in err, err
    assert len(err.replace(named, "<input>")) <= 240, err
    assert list((root / "runs").iterdir()) == []
    imdb = root / "cache" / "imdb"
    assert not imdb.exists() or list(imdb.iterdir()) == []
    return err


# Gloo's worker threads can abort a process while the interpreter shuts down ("terminate
# called without an active exception", SIGABRT), after its work is done and even after
# destroy_process_group(); upstream: pytorch/pytorch#179291.  Seen once in CI on a test that
# had passed many times.
GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(args: list[str], *, ranks: int = 2, timeout: float = 300,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=ranks ARGS``, run
    again once when a rank died of :data:`GLOO_TEARDOWN_ABORT` (any other failure is
    returned as it is)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", *args]
    for attempt in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, env=None if env is None else dict(env))
        if done.returncode == 0 or GLOO_TEARDOWN_ABORT not in done.stderr or attempt:
            return done
    return done
