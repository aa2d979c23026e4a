"""Keras 3 on torch: TensorFlow's embedding update inside Keras, no TensorFlow in the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

keras_model = pytest.importorskip(
    "embeddings.keras_model", reason="the keras extra is not installed: pip install '.[keras]'")

from embeddings import runs  # noqa: E402
from embeddings.model import (  # noqa: E402
    SentimentClassifier,
    binary_crossentropy_from_logits,
    keras_init_,
)
from embeddings.ops import square_sinks  # noqa: E402
from embeddings.optim import KerasAdam  # noqa: E402
from embeddings.testing import assert_close  # noqa: E402

keras = keras_model.keras
REPO = Path(__file__).resolve().parents[1]


def zipf_batch(batch: int = 64, length: int = 20, vocab: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.3, (batch, length)), vocab) - 1
    ids[:, length // 2:] = 0  # padding, as in short reviews
    return ids.astype(np.int64), rng.integers(0, 2, batch)


def test_occurrence_embedding_delivers_sum_of_squares() -> None:
    layer = keras_model.OccurrenceEmbedding(4, 2)
    layer.build((None, 3))
    ids = torch.tensor([[1, 1, 3], [1, 2, 2]])
    upstream = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    (layer(ids) * upstream).sum().backward()
    table, sink = layer.embeddings.value, layer.occurrence_squares.value
    g = upstream.reshape(6, 2)
    assert_close(table.grad[1], g[0] + g[1] + g[3], rtol=0, atol=0)
    assert_close(sink.grad[1], g[0] ** 2 + g[1] ** 2 + g[3] ** 2, rtol=0, atol=0)
    assert_close(sink.grad[2], g[4] ** 2 + g[5] ** 2, rtol=0, atol=0)
    assert layer.occurrence_squares.overwrite_with_gradient  # Keras stores, never updates it


def test_the_sink_holds_the_last_steps_squares_and_is_not_saved(tmp_path: Path) -> None:
    ids, labels = zipf_batch()
    model = keras_model.build_model(50, sequence_length=ids.shape[1])
    model.train_on_batch(ids, labels)
    sink = model.get_layer("embedding").occurrence_squares.value
    assert float(sink.detach().abs().sum()) > 0  # Keras wrote the gradient into it
    assert model.optimizer.iterations.value == 1
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert torch.equal(loaded.get_layer("embedding").embeddings.value,
                       model.get_layer("embedding").embeddings.value)
    # The reloaded optimizer pairs table and sink again (its model has another name, so
    # other variable paths): a second step is the same in both.
    for m in (model, loaded):
        m.train_on_batch(ids[::-1].copy(), labels[::-1].copy())
    assert torch.equal(loaded.get_layer("embedding").embeddings.value,
                       model.get_layer("embedding").embeddings.value)


def one_step_weights(exact: bool) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """One training step from the same weights and batch: Keras on torch vs the native model."""
    ids, labels = zipf_batch()
    native = SentimentClassifier(50, 16, 16)
    keras_init_(native, 0)
    model = keras_model.build_model(50, sequence_length=ids.shape[1], exact_embedding=exact)
    keras_model.set_native_weights(model, native.state_dict())
    model.train_on_batch(ids, labels)
    opt = KerasAdam(native.parameters(), squares=square_sinks(native))
    loss = binary_crossentropy_from_logits(native(torch.from_numpy(ids)), torch.from_numpy(labels))
    loss.backward()
    opt.step()
    return keras_model.native_weights(model), native.state_dict()


def test_one_keras_step_equals_the_native_tf_step() -> None:
    keras_weights, native = one_step_weights(exact=True)
    for name, tensor in native.items():
        # Same update; only the pooling's float32 summation order differs (torch's mean vs
        # TF's four lanes), a few ulps of the gradients: weights agree to 1e-7.
        assert_close(keras_weights[name], tensor, rtol=0, atol=1e-7)


def test_stock_keras_adam_misses_the_per_occurrence_squares() -> None:
    """Negative twin: stock Embedding + Adam on torch is far from TensorFlow's step."""
    keras_weights, native = one_step_weights(exact=False)
    diff = np.abs(keras_weights["embedding.embeddings"]
                  - native["embedding.embeddings"].numpy()).max()
    assert diff > 1e-4


def test_model_layers_are_the_tutorials() -> None:
    model = keras_model.build_model(100, sequence_length=10)
    assert [layer.name for layer in model.layers] == [
        "embedding", "global_average_pooling1d", "dense", "dense_1"]
    assert isinstance(model.layers[0], keras.layers.Embedding)


def test_weights_round_trip_native_keras_exactly() -> None:
    native = SentimentClassifier(30, 4, 3)
    keras_init_(native, 5)
    model = keras_model.build_model(30, 4, 3, sequence_length=7)
    keras_model.set_native_weights(model, native.state_dict())
    back = keras_model.native_weights(model)
    assert all(np.array_equal(back[k], v.numpy()) for k, v in native.state_dict().items())
    ids = torch.randint(0, 30, (11, 7))
    # Same weights: logits differ only by the pooling's summation order.
    assert_close(model.predict(ids.numpy(), verbose=0)[:, 0], native(ids).detach(),
                 rtol=0, atol=1e-6)


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=600,
                          check=False)


def test_keras_run_imports_no_tensorflow_and_works_without_it(small_imdb: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run(f"""
        import sys, importlib.abc, importlib.machinery
        attempts = []
        class Refuse(importlib.abc.Loader):
            def create_module(self, spec):
                attempts.append(spec.name)
                raise ImportError("TensorFlow is not installed here")
            def exec_module(self, module):
                pass
        class NoTensorFlow(importlib.abc.MetaPathFinder):
            # Existence probes (torch._dynamo's find_spec) see a spec; importing fails.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow":
                    return importlib.machinery.ModuleSpec(name, Refuse())
        sys.meta_path.insert(0, NoTensorFlow())
        from embeddings import train
        code = train.main(["--backend", "keras", "--epochs", "2", "--batch-size", "8",
                           "--vocab-size", "20", "--sequence-length", "12", "--device", "cpu",
                           "--data", {str(small_imdb)!r}, "--out", {str(out)!r}])
        loaded = [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
        print("RESULT", code, attempts, loaded)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT 0 [] []" in proc.stdout, proc.stdout[-2000:]
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_accuracy"]) == 2
    # Keras cannot resume: its runs have no checkpoint
    assert sorted(p.name for p in out.iterdir()) == sorted(set(runs.FILES) - {runs.CHECKPOINT_DIR})


def test_conflicting_keras_backend_is_refused() -> None:
    proc = _run("import embeddings.keras_model", env={"KERAS_BACKEND": "jax"})
    assert proc.returncode != 0
    assert "KERAS_BACKEND=jax is set" in proc.stderr


def test_keras_and_native_histories_agree(small_imdb: Path, tmp_path: Path) -> None:
    from embeddings import train

    argv = ["--epochs", "4", "--batch-size", "8", "--vocab-size", "20", "--sequence-length",
            "12", "--device", "cpu", "--data", str(small_imdb)]
    hists = []
    for backend in ("torch", "keras"):
        assert train.main([*argv, "--backend", backend, "--out", str(tmp_path / backend)]) == 0
        hists.append(json.loads((tmp_path / backend / "history.json").read_text()))
    assert hists[0]["val_accuracy"] == hists[1]["val_accuracy"]
    # Same update, pooling summed in another order: losses agree to float32 noise.
    assert_close(hists[0]["loss"], hists[1]["loss"], rtol=1e-5, atol=0)
