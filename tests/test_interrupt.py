"""Ctrl-C, SIGTERM and SIGKILL: a stopped run leaves nothing half-written and says so.

The command-line cases start real training processes and signal them mid-training.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embeddings import interrupt, runs
from embeddings.testing import tree_state

# Without checkpoints: a stopped run leaves nothing (tests/test_resume.py has the others).
LONG = ["--epochs", "100000", "--batch-size", "1", "--vocab-size", "20", "--sequence-length",
        "12", "--device", "cpu", "--checkpoint-every", "never"]


def _start(small_imdb: Path, out: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "embeddings.train", *LONG, *flags,
                             "--data", str(small_imdb), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(proc: subprocess.Popen[str]) -> None:
    """Block until the child has finished its first epoch (it prints a line per epoch)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Epoch 1/"), (line, proc.stderr.read() if proc.stderr else "")


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("sig", "status", "backend"), [
    (signal.SIGINT, 130, "torch"), (signal.SIGTERM, 143, "torch"),
    (signal.SIGTERM, 143, "keras"),
])
def test_a_signal_stops_training_cleanly(sig: int, status: int, backend: str,
                                         small_imdb: Path, tmp_path: Path) -> None:
    if backend == "keras" and importlib.util.find_spec("keras") is None:
        pytest.skip("the keras extra is not installed")
    parent = tmp_path / "runs"
    earlier = parent / "earlier"
    subprocess.run([sys.executable, "-m", "embeddings.train", *LONG[2:], "--epochs", "1",
                    "--data", str(small_imdb), "--out", str(earlier)], check=True,
                   capture_output=True, timeout=300)
    before = tree_state(earlier)
    proc = _start(small_imdb, parent / "run", "--backend", backend)
    _wait_for_training(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted by {signal.Signals(sig).name}: stopped; unfinished output was removed "
        "and everything written before is intact.")
    assert "Traceback" not in err
    assert sorted(p.name for p in parent.iterdir()) == ["earlier"]  # no run, no staging
    assert tree_state(earlier) == before


def test_sigkill_leaves_staging_that_the_next_run_removes(small_imdb: Path,
                                                          tmp_path: Path) -> None:
    parent = tmp_path / "runs"
    proc = _start(small_imdb, parent / "run")
    _wait_for_training(proc)
    proc.kill()
    proc.communicate(timeout=60)
    stale = _hidden(parent)
    assert len(stale) == 1 and stale[0].startswith(".run.partial-")
    subprocess.run([sys.executable, "-m", "embeddings.train", *LONG[2:], "--epochs", "1",
                    "--data", str(small_imdb), "--out", str(parent / "run")], check=True,
                   capture_output=True, timeout=300)
    assert _hidden(parent) == []
    assert runs.load_run(parent / "run").history["loss"]


def test_a_second_run_at_the_same_out_is_refused_before_training(small_imdb: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _start(small_imdb, out)
    try:
        _wait_for_training(first)
        second = subprocess.run([sys.executable, "-m", "embeddings.train", *LONG,
                                 "--data", str(small_imdb), "--out", str(out)],
                                capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == 2, second.stderr
        assert f"Another process (pid {first.pid}) is already writing a run to" in second.stderr
        assert "Epoch" not in second.stdout  # refused before training
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 143
    assert list(tmp_path.iterdir()) == [tmp_path / "aclImdb"]


def test_a_signal_within_a_step_waits_for_the_step_to_finish() -> None:
    """Between hold() and release() SIGTERM is only recorded; release() raises it."""
    with interrupt.signals_raise():
        interrupt.hold()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs; it must not raise inside the step
        with pytest.raises(interrupt.Interrupted) as stopped:
            interrupt.release()
    assert stopped.value.exit_status == 143
    with interrupt.signals_raise(), pytest.raises(interrupt.Interrupted):  # outside a step
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_training_stops_after_the_step_in_progress(small_imdb: Path) -> None:
    """SIGTERM sent in the middle of an optimizer step: that step completes (Keras's
    iteration count includes it) and no further step starts."""
    from embeddings.backends import native
    from embeddings.config import RunConfig, TextConfig, TrainConfig
    from embeddings.data import load_splits
    from embeddings.optim import KerasAdam

    config = RunConfig(text=TextConfig(vocab_size=20, sequence_length=12),
                       train=TrainConfig(batch_size=4, epochs=3, device="cpu"))
    splits = load_splits(small_imdb)
    seen: list[KerasAdam] = []
    real_step = KerasAdam.step

    def step(self: KerasAdam, closure: object = None) -> object:
        seen.append(self)
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the signal is handled here, inside the step
        return real_step(self)

    with interrupt.signals_raise(), pytest.raises(interrupt.Interrupted):
        KerasAdam.step = step  # type: ignore[method-assign]
        try:
            native.BACKEND.train(config, splits, native.Hooks())
        finally:
            KerasAdam.step = real_step  # type: ignore[method-assign]
    assert len(seen) == 3 and seen[0].iterations == 3
