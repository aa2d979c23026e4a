"""The training CLI: outputs, determinism, errors, and the tutorial on the real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embeddings import runs, train
from embeddings.testing import tensorflow_python

SMALL = ["--epochs", "3", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
         "--device", "cpu"]


def run_cli(argv: list[str]) -> int:
    return train.main(argv)


def test_run_writes_every_output(small_imdb: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert run_cli([*SMALL, "--data", str(small_imdb), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 3/3" in printed and "val_accuracy:" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(runs.FILES) == [
        "checkpoint", "config.json", "curves.png", "embedding-map.png",
        "events.out.tfevents.projector", "history.json", "logs", "metadata.tsv",
        "model.safetensors", "projector_config.pbtxt", "vectors.tsv", "vectors.vec",
        "vocabulary.json"]
    history = json.loads((out / "history.json").read_text())
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert all(len(v) == 3 for v in history.values())
    vocab = json.loads((out / "vocabulary.json").read_text())
    # 10 distinct words in the corpus: the vocabulary is shorter than --vocab-size 20
    assert vocab[:2] == ["", "[UNK]"] and len(vocab) == 12
    weights = load_file(out / "model.safetensors")
    assert weights["embedding.embeddings"].shape == (20, 16)
    assert len((out / "vectors.tsv").read_text().splitlines()) == 11
    assert (out / "metadata.tsv").read_text().splitlines() == vocab[1:]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["run"]["device"] == "cpu"
    assert not list(tmp_path.glob(".run.partial-*"))  # staging folder renamed away


def test_training_learns_the_synthetic_signal(small_imdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [*SMALL, "--epochs", "40", "--learning-rate", "0.05"]
    assert run_cli([*argv, "--data", str(small_imdb), "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0] / 2


def test_same_seed_gives_the_same_history_twice(small_imdb: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b", "c"):
        seed = "1" if name == "c" else "0"
        run_cli([*SMALL, "--seed", seed, "--data", str(small_imdb), "--out", str(tmp_path / name)])
        hist = json.loads((tmp_path / name / "history.json").read_text())
        runs.append({k: v for k, v in hist.items() if k != "seconds"})
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_reshuffle_changes_the_order_from_the_first_epoch(small_imdb: Path,
                                                         tmp_path: Path) -> None:
    """Without .cache() the first epoch already reads a new tf.data pass (adapt read pass 0)."""
    hists = []
    for name, extra in (("fixed", []), ("fresh", ["--reshuffle"])):
        run_cli([*SMALL, *extra, "--data", str(small_imdb), "--out", str(tmp_path / name)])
        hists.append(json.loads((tmp_path / name / "history.json").read_text()))
    assert all(a != b for a, b in zip(hists[0]["loss"], hists[1]["loss"], strict=True))


def _has_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


@pytest.mark.skipif(_has_tensorflow(), reason="checks the error raised without TensorFlow")
def test_tf_backend_without_tensorflow_gives_the_install_line(
        small_imdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli([*SMALL, "--backend", "tf", "--data", str(small_imdb),
                    "--out", str(tmp_path / "r")])
    assert code == 2
    assert "pip install 'embeddings[tf]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.tf
def test_tf_backend_runs_the_tutorial_and_matches_torch(small_imdb: Path, tmp_path: Path) -> None:
    """With the tf extra: the same run directory, and the same history as the native model."""
    python, env = tensorflow_python()
    hists = []
    for backend in ("tf", "torch"):
        out = tmp_path / backend
        argv = [*SMALL, "--backend", backend, "--data", str(small_imdb), "--out", str(out)]
        proc = subprocess.run([python, "-m", "embeddings.train", *argv], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        hists.append(json.loads((out / "history.json").read_text()))
        assert (out / "vectors.tsv").is_file() and (out / "model.safetensors").is_file()
    assert hists[0]["val_accuracy"] == hists[1]["val_accuracy"]
    # PARITY.md section 8: the 16 -> 1 matmul and loss reduction differ by float32 ulps.
    np.testing.assert_allclose(hists[0]["loss"], hists[1]["loss"], rtol=1e-6)
    assert not (tmp_path / "r").exists()


def test_existing_run_directory_is_never_overwritten(small_imdb: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert run_cli([*SMALL, "--data", str(small_imdb), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_missing_data_is_one_clear_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([*SMALL, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a if a != "cpu" else "cuda" for a in SMALL]
    assert run_cli([*argv, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device='cuda' was asked for but torch sees no CUDA GPU")
    assert err.count("\n") == 1  # one line, checked before the data is read


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_matches_cpu_run(small_imdb: Path, tmp_path: Path) -> None:
    hists = []
    for device in ("cpu", "cuda"):
        argv = [a if a != "cpu" else device for a in SMALL]
        run_cli([*argv, "--data", str(small_imdb), "--out", str(tmp_path / device)])
        hists.append(json.loads((tmp_path / device / "history.json").read_text()))
    # float32 on different hardware: summation order differs, a few ulps per step.
    np.testing.assert_allclose(hists[0]["loss"], hists[1]["loss"], rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_deterministic_cuda_runs_repeat_exactly(small_imdb: Path, tmp_path: Path) -> None:
    hists = []
    for name in ("a", "b"):
        argv = [a if a != "cpu" else "cuda" for a in SMALL]
        run_cli([*argv, "--deterministic", "--data", str(small_imdb), "--out",
                 str(tmp_path / name)])
        hists.append(json.loads((tmp_path / name / "history.json").read_text()))
    assert hists[0] == hists[1]


@pytest.mark.imdb
def test_tutorial_defaults_on_imdb_as_a_user_runs_it(tmp_path: Path) -> None:
    """The README's main job: defaults, a subprocess, the shared data via EMBEDDINGS_DATA."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "embeddings.train", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch 15/15" in proc.stdout
    history = json.loads((out / "history.json").read_text())
    assert 0.77 <= history["val_accuracy"][-1] <= 0.83
    vectors = (out / "vectors.tsv").read_text().splitlines()
    assert len(vectors) == 9999 and all(len(line.split("\t")) == 16 for line in vectors)
    # Count "\n" only: str.splitlines would also split at the token U+0085 (PARITY.md section 9).
    metadata = (out / "metadata.tsv").read_text(encoding="utf-8").split("\n")
    assert len(metadata) == 10000 and metadata[-1] == "" and metadata[0] == "[UNK]"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for sub, key in (("train", "accuracy"), ("validation", "val_accuracy")):
        events = EventAccumulator(str(out / "logs" / sub))
        events.Reload()
        scalars = [e.value for e in events.Scalars("epoch_accuracy")]
        np.testing.assert_allclose(scalars, history[key], rtol=1e-7)
