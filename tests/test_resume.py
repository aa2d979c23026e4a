"""Exact resume: killed, stopped and finished runs go on to the weights and history of a
run that never stopped; what cannot be resumed is refused with the fix.

The kill and stop cases start real training processes and signal them mid-epoch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from embeddings import train
from embeddings.runs import checkpoint

# 32 training reviews at batch 1: 32 steps an epoch.
TINY = ["--batch-size", "1", "--vocab-size", "20", "--sequence-length", "12", "--device", "cpu"]


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "embeddings.train", *argv],
                          capture_output=True, text=True, timeout=300, check=False)


def _start(small_imdb: Path, out: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "embeddings.train", *TINY, "--epochs",
                             "100000", *flags, "--data", str(small_imdb), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reference(small_imdb: Path, out: Path, epochs: int) -> Path:
    """The run that never stops."""
    assert train.main([*TINY, "--epochs", str(epochs), "--checkpoint-every", "never",
                       "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def _assert_same_run(run: Path, reference: Path) -> None:
    """Bit-identical weights and the same history (``seconds`` apart)."""
    weights, expected = load_file(run / "model.safetensors"), load_file(
        reference / "model.safetensors")
    assert sorted(weights) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(weights[name], expected[name], err_msg=name)
    history = json.loads((run / "history.json").read_text())
    wanted = json.loads((reference / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history[key] == wanted[key], key
    assert not checkpoint.is_incomplete(run)


def _stop_mid_epoch(proc: subprocess.Popen[str], run: Path) -> checkpoint.Checkpoint:
    """SIGSTOP the child once its latest checkpoint lies inside an epoch after the first;
    returns that checkpoint (stable: the child is stopped)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            seen = checkpoint.load(run)
        except checkpoint.CheckpointError:  # not written yet
            seen = None
        if seen is not None and seen.epoch >= 1 and seen.step > 0:
            proc.send_signal(signal.SIGSTOP)
            latest = checkpoint.load(run)
            if latest.step > 0:
                return latest
            proc.send_signal(signal.SIGCONT)  # an epoch's end came first: look again
        time.sleep(0.002)
    raise AssertionError("no checkpoint inside an epoch within 120 s")


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_one_never_stopped(
        small_imdb: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(small_imdb, run, "--checkpoint-every", "3")
    latest = _stop_mid_epoch(proc, run)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint.is_incomplete(run) and not (run / "model.safetensors").exists()
    assert latest.step % 3 == 0 and 0 < latest.step < 32
    total = latest.epoch + 2  # the epoch it was killed in, and one more
    resumed = _cli("--resume", str(run), "--epochs", str(total))
    assert resumed.returncode == 0, resumed.stderr
    assert f"Epoch {latest.epoch + 1}/{total}" in resumed.stdout  # it went on mid-epoch
    assert "Epoch 1/" not in resumed.stdout
    _assert_same_run(run, _reference(small_imdb, tmp_path / "reference", total))


def test_sigterm_saves_a_checkpoint_at_the_step_boundary_and_prints_the_resume_command(
        small_imdb: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(small_imdb, run, "--checkpoint-every", "1000")  # epoch ends only
    assert proc.stdout is not None and proc.stdout.readline().startswith("Epoch 1/")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        "interrupted by SIGTERM: stopped; the run keeps its latest checkpoint; continue "
        f"with: python -m embeddings.train --resume {run}")
    latest = checkpoint.load(run)
    assert latest.state["global_step"] == latest.epoch * 32 + latest.step
    total = latest.epoch + 1
    assert train.main(["--resume", str(run), "--epochs", str(total)]) == 0
    _assert_same_run(run, _reference(small_imdb, tmp_path / "reference", total))


def test_a_finished_run_extended_from_2_to_4_epochs_equals_a_4_epoch_run(
        small_imdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert train.main([*TINY, "--epochs", "2", "--data", str(small_imdb), "--out",
                       str(run)]) == 0
    assert not checkpoint.is_incomplete(run)
    capsys.readouterr()
    assert train.main(["--resume", str(run)]) == 2  # nothing left to train
    assert capsys.readouterr().err.strip() == (
        f"error: {run} has 2 epochs finished, so --epochs 2 leaves nothing to train. "
        "Received: --epochs 2; pass --epochs 3 or more to train on.")
    assert train.main(["--resume", str(run), "--epochs", "4"]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 3/4" in printed and "Epoch 2/4" not in printed
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 4
    _assert_same_run(run, _reference(small_imdb, tmp_path / "reference", 4))


def test_resume_takes_only_epochs_and_refuses_runs_it_cannot_continue(
        small_imdb: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    _reference(small_imdb, plain, 1)  # --checkpoint-every never: no checkpoint
    refused = {
        ("--resume", str(plain), "--learning-rate", "0.1"):
            "only --epochs may be given with it. Received: --learning-rate 0.1",
        ("--resume", str(plain), "--epochs", "2"): "holds no checkpoint",
        ("--resume", str(tmp_path / "nowhere")): "is not a run directory",
        ("--backend", "keras", "--checkpoint-every", "epoch", "--data", str(small_imdb)):
            "--checkpoint-every cannot be honoured by --backend keras",
    }
    for argv, message in refused.items():
        done = _cli(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, argv


def test_a_run_still_training_and_changed_data_are_refused(small_imdb: Path,
                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(small_imdb, run)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("Epoch 1/")
        second = _cli("--resume", str(run))
        assert second.returncode == 2
        assert f"Another process is still training the run in {run}" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143
    (small_imdb / "train" / "pos" / "99_9.txt").write_bytes(b"brand new words entirely")
    changed = _cli("--resume", str(run), "--data", str(small_imdb))
    assert changed.returncode == 2 and "only --epochs" in changed.stderr
    changed = _cli("--resume", str(run))
    assert changed.returncode == 2
    assert "the data now gives another vocabulary" in changed.stderr
