"""Tests of ``benchmarks/whole_run.py`` end to end on the small ``aclImdb`` tarball."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import whole_run
from embeddings.data.tarball import parsed_path
from embeddings.testing import TINY_TRAIN_FLAGS, cli_error, make_tarball

REPO = Path(__file__).resolve().parents[1]
TRAIN_ARGS = " ".join(TINY_TRAIN_FLAGS)


@pytest.fixture
def archive(small_imdb: Path, tmp_path: Path) -> Path:
    make_tarball(small_imdb, tmp_path / "imdb.tar.gz")
    return tmp_path / "imdb.tar.gz"


def test_each_repeat_is_timed_and_measured_and_tf_without_tensorflow_is_skipped(
        archive: Path, tmp_path: Path) -> None:
    """Two rounds of torch, and tf under an interpreter that cannot import TensorFlow:
    reported as skipped with the reason, never an error."""
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.whole_run", "--data", str(archive), "--backends",
         "torch,tf", "--repeats", "2", "--train-args", TRAIN_ARGS, "--tf-python",
         str(tmp_path / "no-python"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "EMBEDDINGS_DATA": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    torch_case = report["cases"]["torch"]
    assert len(torch_case["wall"]["times_s"]) == 2 and all(
        t > 0.2 for t in torch_case["wall"]["times_s"])  # a whole interpreter, torch imported
    assert len(torch_case["peak_rss_mib_each"]) == 2 and torch_case["peak_rss_mib"] > 100
    assert "--backend torch" in torch_case["command"] and "--epochs 1" in torch_case["command"]
    phases = torch_case["phases_s"]  # read off the runs' logs
    assert set(phases) == {"read", "adapt", "vectorize", "epochs", "in_process"}
    assert all(v is not None and v >= 0 for v in phases.values())
    assert phases["in_process"] < min(torch_case["wall"]["times_s"])
    assert "cannot import tensorflow" in report["cases"]["tf"]["skipped"]
    first = report["cases"][whole_run.FIRST]  # the same command, nothing kept before it
    assert first["command"] == torch_case["command"].replace("torch-<i>", "torch-first-<i>")
    assert len(first["wall"]["times_s"]) == 2
    assert list(report["cases"]) == ["torch", whole_run.FIRST, "tf"]
    assert set(report["summary"]["wall_ratio_to_torch"]) == {"torch", whole_run.FIRST}
    assert report["summary"]["wall_ratio_to_torch"]["torch"] == 1.0
    assert "sha256" in report["data"]["source"] and report["data"]["reviews"] == 40
    assert "torch" in proc.stdout and "skipped" in proc.stdout


@pytest.mark.parametrize("flags,message", [
    (["--backends", "torch,jax"], "--backends takes a comma-separated list"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--train-args", "--out elsewhere"], "--train-args must not set"),
])
def test_mistakes_exit_2_in_one_message(archive: Path, flags: list[str], message: str) -> None:
    err = cli_error(["benchmarks.whole_run", "--data", str(archive), *flags], cwd=REPO)
    assert message in err


def test_the_first_run_case_targets_the_archives_kept_reviews(archive: Path,
                                                             small_imdb: Path) -> None:
    """``torch-first`` deletes :func:`whole_run.kept_copy` before each run: for an archive
    that is the file its reviews are kept in, for a folder there is none."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert whole_run.kept_copy(str(archive)) == parsed_path(digest, "train")
    assert whole_run.kept_copy(str(small_imdb)) is None


def test_the_command_is_the_users_training_command() -> None:
    assert whole_run.command("keras", "py", "d.tar.gz", ["--epochs", "2"], "o") == [
        "py", "-m", "embeddings.train", "--backend", "keras", "--data", "d.tar.gz",
        "--out", "o", "--epochs", "2"]


def test_phases_are_read_off_a_training_log() -> None:
    from benchmarks import common

    log = ("IMDb from x.tar.gz (sha256 ab): 16 training and 4 validation reviews, read in 0.41 s\n"
           "adapt: 16 reviews in 0.15 s (100 reviews/s)\nvectorize: 20 reviews in 0.10 s (200 "
           "reviews/s)\nEpoch 1/2 - 0.09s - loss: 0.6886\nEpoch 2/2 - 0.03s - loss: 0.6736\n"
           "Wrote runs/x in 2.5s\n")
    got = common.phases(log)
    assert got == {"read": 0.41, "adapt": 0.15, "vectorize": 0.10,
                   "epochs": pytest.approx(0.12), "in_process": 2.5}
    assert common.phases("Epoch 1/2 - 0.09s\n")["read"] is None
