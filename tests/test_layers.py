"""The Keras layer :class:`embeddings.layers.TextVectorization` on torch, JAX and NumPy: the
engine's outputs as the backend's tensors, its configuration, and ``.keras`` files.

This process runs Keras on torch (as :mod:`embeddings.keras_model` does); the JAX and
NumPy backends, and torch again from a fresh start, run in subprocesses.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
layers = pytest.importorskip("embeddings.layers",
                             reason="the keras extra is not installed: pip install '.[keras]'")

import keras  # noqa: E402
import torch  # noqa: E402

import embeddings  # noqa: E402
from embeddings.testing import assert_close  # noqa: E402
from embeddings.text import TextVectorization as Engine  # noqa: E402

TESTS = Path(__file__).resolve().parent

# Tokens TensorFlow keeps whole and Python's str.splitlines() would cut: U+0085 (NEL) and a
# lone Latin-1 byte; plus a UTF-8 'é', an invalid byte and punctuation.
CORPUS: list[str | bytes] = [
    "The film, the PLOT!", "a film\x85with café", b"caf\xe9 \xff bytes", "the the end",
    "plot twist<br />end", "café café film",
]
TEXTS: list[str | bytes] = ["the film café", "unknown words here", b"\xff the caf\xe9",
                            "film\x85with plot plot", ""]
MODES: dict[str, dict[str, Any]] = {
    "int": {"max_tokens": 12, "output_sequence_length": 6},
    "int_ngrams": {"ngrams": 2},  # int mode, as long as the longest row
    "multi_hot": {"output_mode": "multi_hot", "max_tokens": 14, "pad_to_max_tokens": True},
    "count": {"output_mode": "count"},
    "tf_idf": {"output_mode": "tf_idf", "max_tokens": 10},
}


def engine_output(case: str) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """The engine's output on :data:`TEXTS`, its vocabulary and IDF weights."""
    engine = Engine(**MODES[case])
    engine.adapt(CORPUS)
    out = engine(TEXTS)
    assert isinstance(out, np.ndarray)
    return out, engine.get_vocabulary(), engine.idf_weights


def numpy(x: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


# Every mode on every backend, in a fresh process each ---------------------------------------

CHILD = """
import json, os, sys, tempfile
sys.path.insert(0, {tests!r})
import keras_conformance
sys.meta_path.insert(0, keras_conformance._NoTensorFlow())  # import tensorflow fails
import keras
import numpy as np
from embeddings.layers import TextModel, TextVectorization

backend = keras.backend.backend()
if backend == "torch":
    from torch import Tensor as expected_type
elif backend == "jax":
    from jax import Array as expected_type
else:
    expected_type = np.ndarray
results = {{}}
for case, kwargs in {modes!r}.items():
    layer = TextVectorization(**kwargs)
    layer.adapt({corpus!r})
    out = layer({texts!r})
    from_array = layer(np.array({texts!r}, dtype=object))  # a NumPy "tensor" on numpy
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    TextModel(layer, keras.layers.Identity()).save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    again = loaded({texts!r})
    idf = loaded.vectorizer.idf_weights
    results[case] = {{
        "is_backend_tensor": isinstance(out, expected_type) and keras.ops.is_tensor(out),
        "type": type(out).__module__ + "." + type(out).__qualname__,
        "dtype": keras.backend.standardize_dtype(out.dtype),
        "values": keras.ops.convert_to_numpy(out).tolist(),
        "from_array": keras.ops.convert_to_numpy(from_array).tolist(),
        "reloaded": keras.ops.convert_to_numpy(again).tolist(),
        "vocabulary": loaded.vectorizer.get_vocabulary(),
        "idf_weights": None if idf is None else idf.tolist(),
    }}
ours = os.path.dirname(__import__("embeddings").__file__)
results["tensorflow_imports_by_embeddings"] = [
    a["stack"] for a in keras_conformance._attempts if a["importer"].startswith(ours)]
results["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(results))
"""


@pytest.mark.parametrize("backend", ["torch", "jax", "numpy"])
def test_every_mode_gives_the_engine_output_as_the_backend_tensor(backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax", reason="the test extra is not installed: pip install "
                                          "'.[test]'")
    script = CHILD.format(tests=str(TESTS), modes=MODES, corpus=CORPUS, texts=TEXTS)
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run([sys.executable, "-W", "error", "-W",
                           "ignore:__array__ implementation:DeprecationWarning", "-c", script],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert results.pop("tensorflow_imports_by_embeddings") == []
    assert results.pop("tensorflow_loaded") is False
    assert set(results) == set(MODES)
    for case, got in results.items():
        expected, vocabulary, idf = engine_output(case)
        assert got["is_backend_tensor"], (case, got["type"])
        int_dtype = "int32" if backend == "jax" else "int64"  # JAX without jax_enable_x64
        assert got["dtype"] == (int_dtype if expected.dtype == np.int64 else "float32"), case
        for key in ("values", "from_array", "reloaded"):
            np.testing.assert_array_equal(np.asarray(got[key], dtype=expected.dtype), expected,
                                          err_msg=f"{case} {key}")
        assert got["vocabulary"] == vocabulary, case
        assert (got["idf_weights"] is None) == (idf is None), case
        if idf is not None:
            np.testing.assert_array_equal(np.asarray(got["idf_weights"], np.float32), idf)


# In this process (torch) ------------------------------------------------------------------


@pytest.mark.parametrize("case", list(MODES))
def test_outputs_equal_the_engine_as_torch_tensors(case: str) -> None:
    layer = layers.TextVectorization(**MODES[case])
    layer.adapt(CORPUS)
    out = layer(TEXTS)
    expected, vocabulary, _ = engine_output(case)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.from_numpy(expected).dtype
    assert torch.equal(out.cpu(), torch.from_numpy(expected))
    assert layer.get_vocabulary() == vocabulary
    spec = layer.compute_output_spec(keras.KerasTensor((len(TEXTS),), dtype="string"))
    assert spec.dtype == str(expected.dtype)  # the symbolic output says what a call gives
    assert spec.shape[-1] in (None, expected.shape[-1])


def test_keras_docstring_example_gives_keras_ids() -> None:
    layer = layers.TextVectorization(max_tokens=5000, output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    assert layer.get_vocabulary() == ["", "[UNK]", "baz", "bar", "foo", "boom", "bada"]
    assert numpy(layer([["foo qux bar"], ["qux baz"]])).tolist() == [[4, 1, 3, 0], [1, 2, 0, 0]]


def test_tf_idf_is_counts_times_given_weights_and_oov_gets_their_mean() -> None:
    layer = layers.TextVectorization(output_mode="tf_idf", vocabulary=["foo", "bar", "baz"],
                                     idf_weights=[0.3, 0.5, 0.2])
    out = numpy(layer(["foo bar foo", "qux qux baz"]))
    mean = np.float32((0.3 + 0.5 + 0.2) / 3)
    expected = np.array([[0, 0.6, 0.5, 0], [2 * mean, 0, 0, 0.2]], np.float32)
    assert_close(out, expected, rtol=1e-6, atol=1e-7)
    assert_close(layer.idf_weights, [mean, 0.3, 0.5, 0.2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("kwargs", "input_shape", "expected"), [
    ({"output_sequence_length": 6}, (None,), (None, 6)),
    ({"output_sequence_length": 6}, (3, 1), (3, 6)),
    ({}, (None, 1), (None, None)),
    ({"output_mode": "multi_hot", "max_tokens": 9, "pad_to_max_tokens": True}, (None,),
     (None, 9)),
    ({"output_mode": "count", "vocabulary": ["a", "b"]}, (5,), (5, 3)),
    ({"output_mode": "one_hot", "split": None, "vocabulary": ["a", "b"]}, (5, 1), (5, 3)),
])
def test_output_shape_follows_keras(kwargs: dict[str, Any], input_shape: tuple[Any, ...],
                                    expected: tuple[Any, ...]) -> None:
    layer = layers.TextVectorization(**kwargs)
    assert layer.compute_output_shape(input_shape) == expected
    spec = layer.compute_output_spec(keras.KerasTensor(input_shape, dtype="string"))
    assert spec.shape == expected
    assert spec.dtype == "int64"


@pytest.mark.parametrize("argument", ["sparse", "ragged"])
def test_sparse_and_ragged_are_refused(argument: str) -> None:
    with pytest.raises(ValueError, match=f"`{argument}=True` can only be used with the "
                                         rf"TensorFlow backend.*Received: {argument}=True"):
        layers.TextVectorization(vocabulary=["a"], **{argument: True})


@keras.saving.register_keras_serializable(package="tests")
def dashes_to_spaces(texts: np.ndarray) -> np.ndarray:
    return np.char.replace(np.char.lower(texts), "-", " ")


@keras.saving.register_keras_serializable(package="tests")
def split_on_bars(texts: np.ndarray) -> list[list[str]]:
    return [t.split("|") for t in texts.tolist()]


def test_config_round_trips_with_serialized_callables() -> None:
    layer = layers.TextVectorization(standardize=dashes_to_spaces, split=split_on_bars,
                                     ngrams=(1, 2), output_sequence_length=4,
                                     vocabulary=["a b", "c", "a b|c"], name="vec")
    config = layer.get_config()
    assert config["standardize"]["config"] == "tests>dashes_to_spaces"
    assert config["split"]["config"] == "tests>split_on_bars"
    revived = layers.TextVectorization.from_config(json.loads(json.dumps(config)))
    assert revived.get_config() == config
    assert revived.name == "vec" and revived.engine.ngrams == (1, 2)
    texts = ["A-B|C", "c|zz"]
    # "a b|c" split on bars: "a b", "c", then the bigram "a b c" (unknown)
    assert numpy(revived(texts)).tolist() == numpy(layer(texts)).tolist() == [
        [2, 3, 1, 0], [3, 1, 1, 0]]


def test_keras_file_restores_a_learned_vocabulary_and_idf_weights(tmp_path: Path) -> None:
    layer = layers.TextVectorization(output_mode="tf_idf", name="vec")
    layer.adapt(CORPUS)
    model = layers.TextModel(layer, keras.layers.Identity())
    expected = numpy(model(TEXTS))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(numpy(loaded(TEXTS)), expected)
    assert loaded.vectorizer.get_vocabulary() == layer.get_vocabulary()
    assert loaded.vectorizer.idf_weights is not None and layer.idf_weights is not None
    np.testing.assert_array_equal(loaded.vectorizer.idf_weights, layer.idf_weights)
    with zipfile.ZipFile(path) as archive:
        asset = archive.read("assets/layers/text_vectorization/vocabulary.txt").split(b"\n")
        weights = archive.read("model.weights.h5")
    assert b"film\xc2\x85with" in asset and b"caf\xe9" in asset and b"\xff" in asset
    import h5py

    with h5py.File(io.BytesIO(weights)) as h5:
        stored = h5["layers/text_vectorization/vars/idf_weights"][()]
    np.testing.assert_array_equal(stored, layer.idf_weights)


def test_a_given_vocabulary_lives_in_the_config_not_in_an_asset(tmp_path: Path) -> None:
    layer = layers.TextVectorization(vocabulary=["b", "a"], name="vec")
    path = tmp_path / "model.keras"
    layers.TextModel(layer, keras.layers.Identity()).save(path)
    with zipfile.ZipFile(path) as archive:
        assert not [n for n in archive.namelist() if n.endswith("vocabulary.txt")]
        config = json.loads(archive.read("config.json"))
    assert config["config"]["vectorizer"]["config"]["vocabulary"] == ["b", "a"]
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert numpy(loaded(["a b c"])).tolist() == [[3, 2, 1]]


def test_from_engine_shares_an_adapted_engine() -> None:
    engine = Engine(output_sequence_length=5)
    engine.adapt(CORPUS)
    layer = layers.TextVectorization.from_engine(engine, name="shared")
    assert layer.engine is engine and layer.name == "shared"
    np.testing.assert_array_equal(numpy(layer(TEXTS)), engine(TEXTS))
    layer.adapt(["x y y"])
    assert engine.get_vocabulary() == ["", "[UNK]", "y", "x"]


def test_adapt_reads_generators_and_stops_after_steps() -> None:
    def batches() -> Any:
        yield ["a b", "b"]
        yield ["c c c"]
        yield ["d d d d"]  # Keras, and the engine, take this one from the generator, unused
        raise AssertionError("read two batches past steps")

    layer = layers.TextVectorization()
    layer.adapt(batches(), steps=2)
    assert layer.get_vocabulary() == ["", "[UNK]", "c", "b", "a"]


def test_text_model_refuses_another_vectorizer() -> None:
    with pytest.raises(TypeError, match="Received: vectorizer=Identity"):
        layers.TextModel(keras.layers.Identity(), keras.layers.Identity())


def test_keras_on_tensorflow_without_tensorflow_is_a_clear_error() -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True,
                           env=env, timeout=300, check=False)
    if probe.returncode == 0:
        pytest.skip("TensorFlow is installed here: Keras loads on it")
    proc = subprocess.run([sys.executable, "-c", "import embeddings.layers"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("embeddings.errors.MissingExtra: Keras is installed but its "
                           "backend did not load"), proc.stderr[-2000:]
    assert "Received: KERAS_BACKEND='tensorflow'; set KERAS_BACKEND to torch, jax or numpy" \
        in last


def test_the_text_package_stays_free_of_keras() -> None:
    code = ("import sys, embeddings.text as t; v = t.TextVectorization(); v.adapt(['a']); "
            "v(['a']); print(sorted(m for m in ('keras', 'torch', 'tensorflow') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(embeddings.__file__).parents[1])
    assert proc.stdout.strip() == "[]"
