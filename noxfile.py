"""Developer sessions: ``nox -s lint typecheck tests parity`` (CI), ``parity_live``, ``bench``."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "parity"]
nox.options.reuse_existing_virtualenvs = True

# The torch that CI installs: on the project's machines it is a CPU wheel on disk;
# any other version pulls a multi-GB CUDA build. Users may install other versions.
TORCH = os.environ.get("EMBEDDINGS_TORCH", "torch==2.13.0")


def _install(session: nox.Session, *extras: str) -> None:
    """Install the pinned torch, then the package with ``extras``."""
    session.install(TORCH)
    names = ",".join(extras)
    session.install("-e", f".[{names}]" if names else ".")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on everything."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the package and the benchmarks (untyped definitions are errors)."""
    _install(session, "lint")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, CLI and reliability tests (no TensorFlow); IMDb from EMBEDDINGS_DATA."""
    _install(session, "test")
    session.run("pytest", "tests", *session.posargs)


@nox.session
def parity(session: nox.Session) -> None:
    """Offline parity: compare with the committed TensorFlow fixtures; writes parity-report.md."""
    _install(session, "test")
    session.run("pytest", "parity_tests", *session.posargs)


@nox.session
def parity_live(session: nox.Session) -> None:
    """Install TensorFlow, regenerate the reference in a temporary folder, compare live,
    and run every test that needs TensorFlow (a skip there is a failure)."""
    _install(session, "test", "tf")
    data = os.environ.get("EMBEDDINGS_DATA")
    if not data:
        session.error("parity_live needs EMBEDDINGS_DATA: an aclImdb directory or tarball")
    tmp = session.create_tmp()
    session.run("python", "parity_tests/reference/make_reference.py", "--data", data,
                "--out", tmp)
    session.run("python", "parity_tests/reference/make_keras_reference.py", "--data", data,
                "--out", os.path.join(tmp, "keras"))
    session.run("python", "parity_tests/reference/make_text_reference.py", "--data", data,
                "--out", tmp)
    env = {"EMBEDDINGS_FIXTURES": tmp, "EMBEDDINGS_REQUIRE_TF": "1"}
    # Every comparison with the fresh reference, then every test that needs TensorFlow
    # (the tf backend's flag walk, the text engine's differential fuzzing, TensorFlow
    # loading an exported .keras, ...).
    session.run("pytest", "parity_tests", *session.posargs, env=env)
    session.run("pytest", "tests", "-m", "tf", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks that write JSON reports to benchmarks/reports (not a default session).

    TensorFlow's cases run too (the tf extra); the vectorizer, epoch, step and whole-run
    benchmarks read IMDb from EMBEDDINGS_DATA. ``python -m benchmarks.accuracy --data
    LABELLED`` needs the test reviews too, so it runs apart. Extra arguments go to the
    hot-loop benchmark (``nox -s bench -- --device cuda``). Compare two reports with
    ``python -m benchmarks.compare A.json B.json``.
    """
    _install(session, "bench", "tf")
    session.run("python", "-m", "benchmarks.vectorizer")
    session.run("python", "-m", "benchmarks.hotloop", *session.posargs)
    session.run("python", "-m", "benchmarks.epoch")
    session.run("python", "-m", "benchmarks.step")
    session.run("python", "-m", "benchmarks.whole_run")
