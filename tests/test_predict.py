"""Inference on raw text from a run directory, both backends, and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from embeddings import predict, runs, train
from embeddings.model import SentimentClassifier
from embeddings.testing import assert_close

ARGS = ["--epochs", "30", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
        "--device", "cpu", "--learning-rate", "0.05"]


@pytest.fixture
def run_dir(small_imdb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def test_probabilities_follow_the_learned_signal(run_dir: Path) -> None:
    probs = predict.predict(["good good movie", "bad bad movie"], run_dir)
    assert probs.shape == (2,) and probs.dtype == torch.float32
    assert probs[0] > 0.5 > probs[1]


def test_probability_is_sigmoid_of_the_native_logit(run_dir: Path) -> None:
    run = runs.load_run(run_dir)
    texts = ["good plot", "bad actor", "", "unknown words only"]
    model = SentimentClassifier.from_weights(run.weights)
    logits = model(torch.from_numpy(run.vectorizer()(texts))).detach()
    assert_close(predict.predict(texts, run), torch.sigmoid(logits), rtol=0, atol=0)


def test_keras_backend_predicts_the_same(run_dir: Path) -> None:
    pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    texts = ["good good movie", "bad film", "the story"]
    # Same weights; Keras pools with torch's mean, a different float32 summation order.
    assert_close(predict.predict(texts, run_dir, backend="keras"),
                 predict.predict(texts, run_dir), rtol=0, atol=1e-6)


def test_cli_reads_arguments_and_stdin(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert predict.main(["--run", str(run_dir), "good movie", "bad movie"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["good movie", "bad movie"]
    assert float(lines[0].split("\t")[0]) > float(lines[1].split("\t")[0])
    monkeypatch.setattr("sys.stdin", io.StringIO("good one\nbad one\n"))
    assert predict.main(["--run", str(run_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_missing_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert predict.main(["--run", str(tmp_path), "text"]) == 2
    assert "model.safetensors is missing" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_one_line(run_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the error raised without a GPU")
    assert predict.main(["--run", str(run_dir), "--device", "cuda", "text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device='cuda'") and err.count("\n") == 1


def test_unknown_backend_is_rejected(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        predict.predict(["x"], run_dir, backend="jax")
