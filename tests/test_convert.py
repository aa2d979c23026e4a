"""Keras files <-> run directories, bit for bit, without unpickling."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embeddings import convert, keras_file, predict, runs, train
from embeddings.model import SentimentClassifier
from embeddings.testing import assert_close, tensorflow_python

pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
FIXTURES = Path(__file__).resolve().parents[1] / "parity_tests" / "fixtures" / "keras"
ARGS = ["--epochs", "3", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
        "--device", "cpu"]


@pytest.fixture
def run_dir(small_imdb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def test_run_to_keras_and_back_is_bit_identical(run_dir: Path, tmp_path: Path) -> None:
    keras_file = convert.run_to_keras(run_dir, tmp_path / "exported.keras")
    assert zipfile.is_zipfile(keras_file)
    assert (tmp_path / "exported.vocabulary.txt").is_file()
    back = convert.keras_to_run(keras_file, tmp_path / "back")
    original, restored = load_file(run_dir / "model.safetensors"), load_file(
        back / "model.safetensors")
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert (back / "vocabulary.json").read_text() == (run_dir / "vocabulary.json").read_text()
    texts = ["good movie", "bad film plot"]
    assert torch.equal(predict.predict(texts, back), predict.predict(texts, run_dir))


def test_exported_keras_file_loads_in_stock_keras(run_dir: Path, tmp_path: Path) -> None:
    from embeddings.keras_model import keras

    keras_file = convert.run_to_keras(run_dir, tmp_path / "m.keras")
    model = keras.saving.load_model(keras_file, safe_mode=True)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Embedding", "GlobalAveragePooling1D", "Dense", "Dense"]
    run = runs.load_run(run_dir)
    ids = run.vectorizer()(["good movie", "bad film"])
    native = SentimentClassifier.from_weights(run.weights)
    assert_close(model.predict(ids, verbose=0)[:, 0],
                 native(torch.from_numpy(ids)).detach(), rtol=0, atol=1e-6)


def test_tf_keras_file_with_vectorizer_converts(tmp_path: Path) -> None:
    out = convert.keras_to_run(FIXTURES / "tutorial_small.keras", tmp_path / "run")
    run = runs.load_run(out)
    vocab = (FIXTURES / "tutorial_small.vocabulary.txt").read_text(encoding="utf-8").split("\n")
    assert run.vocabulary == run.vectorizer().get_vocabulary() == vocab[:-1]
    assert run.settings.text.sequence_length == 100
    assert run.weights["embedding.embeddings"].shape == (1000, 16)


def test_weights_h5_needs_and_takes_a_vocabulary(tmp_path: Path) -> None:
    h5 = tmp_path / "alone.weights.h5"  # no vocabulary file beside it
    h5.write_bytes((FIXTURES / "tutorial_small.weights.h5").read_bytes())
    with pytest.raises(ValueError, match="--vocabulary"):
        convert.keras_to_run(h5, tmp_path / "a")
    out = convert.keras_to_run(h5, tmp_path / "b",
                               vocabulary=FIXTURES / "tutorial_small.vocabulary.txt")
    from_keras = convert.keras_to_run(FIXTURES / "tutorial_small.keras", tmp_path / "c")
    a, b = load_file(out / "model.safetensors"), load_file(from_keras / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weights_h5_finds_its_own_sidecar_vocabulary(tmp_path: Path) -> None:
    """``m.v3.weights.h5`` reads ``m.v3.vocabulary.txt`` (only the final suffix goes), not
    ``m.vocabulary.txt``."""
    (tmp_path / "m.v3.weights.h5").write_bytes((FIXTURES / "tutorial_small.weights.h5")
                                               .read_bytes())
    tokens = (FIXTURES / "tutorial_small.vocabulary.txt").read_text(encoding="utf-8")
    (tmp_path / "m.v3.vocabulary.txt").write_text(tokens, encoding="utf-8")
    (tmp_path / "m.vocabulary.txt").write_text("\n[UNK]\nwrong\n", encoding="utf-8")
    out = convert.keras_to_run(tmp_path / "m.v3.weights.h5", tmp_path / "run")
    assert runs.load_run(out).vocabulary == tokens.split("\n")[:-1]


def test_not_a_keras_file_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "x.keras"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a .keras archive nor an HDF5"):
        keras_file.read_keras(bogus)
    with pytest.raises(FileNotFoundError, match="No Keras file"):
        keras_file.read_keras(tmp_path / "missing.keras")


def test_vocabulary_larger_than_table_is_rejected(tmp_path: Path) -> None:
    vocab = tmp_path / "v.txt"
    vocab.write_text("".join(f"t{i}\n" for i in range(1001)))
    with pytest.raises(ValueError, match="only 1000"):
        convert.keras_to_run(FIXTURES / "tutorial_small.weights.h5", tmp_path / "r",
                             vocabulary=vocab)


def test_cli_converts_both_ways(run_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert convert.main([str(run_dir), str(tmp_path / "m.keras")]) == 0
    assert convert.main([str(tmp_path / "m.keras"), str(tmp_path / "back")]) == 0
    assert convert.main([str(tmp_path / "m.keras"), str(tmp_path / "back")]) == 2
    assert "never overwritten" in capsys.readouterr().err
    np.testing.assert_array_equal(
        load_file(tmp_path / "back" / "model.safetensors")["dense_1.kernel"].numpy(),
        load_file(run_dir / "model.safetensors")["dense_1.kernel"].numpy())


@pytest.mark.tf
def test_exported_keras_file_loads_in_tensorflow(run_dir: Path, tmp_path: Path) -> None:
    """The written .keras is plain Keras: TensorFlow's Keras loads it and predicts the same."""
    python, env = tensorflow_python()
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    keras_file = convert.run_to_keras(run_dir, tmp_path / "m.keras")
    run = runs.load_run(run_dir)
    ids = run.vectorizer()(["good movie", "bad film", "plot story actor"])
    np.save(tmp_path / "ids.npy", ids)
    code = (
        "import json, sys, numpy as np, keras\n"
        f"m = keras.saving.load_model({str(keras_file)!r}, safe_mode=True)\n"
        f"ids = np.load({str(tmp_path / 'ids.npy')!r}, allow_pickle=False)\n"
        "print(json.dumps([float(x) for x in m.predict(ids, verbose=0)[:, 0]]))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tf_logits = json.loads(proc.stdout.strip().splitlines()[-1])
    # Same weights; TF pools and multiplies in its own float32 order (PARITY.md section 8).
    native = SentimentClassifier.from_weights(run.weights)
    assert_close(tf_logits, native(torch.from_numpy(ids)).detach(), rtol=0,
                 atol=1e-6)
