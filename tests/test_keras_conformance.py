"""Keras's own ``TextVectorization`` tests pass on :class:`embeddings.layers.TextVectorization`
on the torch, JAX and NumPy backends, with no TensorFlow in the process."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path

import keras_conformance as conformance  # tests/keras_conformance.py
import pytest

import embeddings

if importlib.util.find_spec("keras") is None:
    pytest.skip("the keras extra is not installed: pip install '.[keras]'",
                allow_module_level=True)

TF_OPS = "uses TensorFlow ops (`tf`)"
TF_DATA = "uses tf.data (`tf_data`)"
TF_ONLY = "Keras runs it on the TensorFlow backend only: "
RAGGED = TF_ONLY + "Requires ragged tensors.; " + TF_OPS
STRING_INPUT = TF_ONLY + "Requires string input dtype"

# Keras 3.15.1's tests that cannot apply without TensorFlow, with why. A new or changed
# Keras test changes this list, and the test below fails until someone looks at it.
NOT_APPLICABLE = {
    "test_adapt_with_grain_dataset": "uses a grain dataset (`grain`, not installed)",
    "test_adapt_with_steps": TF_DATA,
    "test_adapt_with_tf_dataset": TF_DATA,
    "test_custom_splitting": TF_OPS,
    "test_custom_standardize_callable": TF_OPS,
    "test_one_hot_output": TF_ONLY + "one_hot output only supported on TensorFlow",
    "test_ragged_tensor": RAGGED,
    "test_ragged_tensor_output_length": RAGGED,
    "test_save_load_tf_idf_mode": STRING_INPUT,
    "test_save_load_with_ngrams_flow": STRING_INPUT,
    "test_sparse_output": TF_ONLY + "sparse=True only supported on TensorFlow",
    "test_static_output_sequence_length_from_dense": TF_DATA,
    "test_static_output_sequence_length_from_ragged": TF_DATA,
    "test_tf_as_first_sequential_layer": TF_ONLY + "Requires string tensors.",
    "test_tf_data_compatibility": TF_DATA,
}
APPLICABLE = 27  # Keras 3.15.1: 42 test cases, 15 of them above


@pytest.mark.parametrize("backend", ["torch", "jax", "numpy"])
def test_every_applicable_keras_test_passes(backend: str, tmp_path: Path) -> None:
    if backend == "jax":
        pytest.importorskip("jax", reason="the test extra is not installed: pip install "
                                          "'.[test]'")
    report = conformance.run(backend, tmp_path)
    assert report.failed == {}, "\n\n".join(report.failed.values())
    assert report.skipped == NOT_APPLICABLE
    assert len(report.passed) == APPLICABLE, report.output[-3000:]
    assert report.returncode == 0, report.output[-3000:]
    assert not report.tensorflow_loaded
    # Keras probes for TensorFlow (tf.available) and is refused; this package never tries.
    assert report.tensorflow_imports_by(Path(embeddings.__file__).parent) == []


KERAS_LIKE = '''
import grain
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import data as tf_data

from keras.src import backend
from keras.src import layers
from keras.src import testing


class T(testing.TestCase):
    def test_plain(self):
        layers.TextVectorization()

    def test_dataset(self):
        def helper():
            return tf_data.Dataset

    @pytest.mark.skipif(backend.backend() != "tensorflow", reason="Needs TF.")
    def test_tf_backend(self):
        pass

    @pytest.mark.skipif(backend.backend() == "tensorflow", reason="Not on TF.")
    def test_not_tf_backend(self):
        np.zeros(1)
'''


def test_rewrite_drops_tensorflow_and_marks_what_needs_it() -> None:
    source, skipped = conformance.rewrite(KERAS_LIKE)
    assert skipped == {"test_dataset": TF_DATA, "test_tf_backend": TF_ONLY + "Needs TF."}
    tree = ast.parse(source)
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for a in node.names}
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "tensorflow" not in imported and "grain" not in imported
    assert "tensorflow" not in modules and "embeddings.layers" in modules
    tests = {f.name: [ast.unparse(d) for d in f.decorator_list] for f in ast.walk(tree)
             if isinstance(f, ast.FunctionDef) and f.name.startswith("test")}
    assert tests == {
        "test_plain": [],
        "test_dataset": [f"pytest.mark.skip(reason={TF_DATA!r})"],
        "test_tf_backend": [f"pytest.mark.skip(reason={TF_ONLY + 'Needs TF.'!r})"],
        "test_not_tf_backend": ["pytest.mark.skipif(backend.backend() == 'tensorflow', "
                                "reason='Not on TF.')"],
    }


def test_rewrite_refuses_a_module_without_keras_layers() -> None:
    with pytest.raises(ValueError, match="no longer has `from keras.src import layers`"):
        conformance.rewrite("import numpy as np\n")


def test_installed_keras_tests_are_found_and_rewritten() -> None:
    source, skipped = conformance.rewrite(conformance.keras_test_file().read_text("utf-8"))
    assert "import tensorflow" not in source and "_OurTextVectorization" in source
    parametrized = {"test_static_output_sequence_length"}  # two cases in NOT_APPLICABLE
    expected = {name for name in NOT_APPLICABLE
                if not name.startswith("test_static_output_sequence_length")} | parametrized
    assert set(skipped) == expected


def test_the_plugin_refuses_tensorflow_and_names_the_importer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importer = tmp_path / "wants_tf.py"
    importer.write_text(textwrap.dedent("""
        import importlib.util
        PROBE = importlib.util.find_spec("tensorflow")  # a probe is no attempt
        import tensorflow
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = conformance._NoTensorFlow()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.setattr(conformance, "_attempts", [])
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    with pytest.raises(ModuleNotFoundError, match="forbids TensorFlow"):
        importlib.import_module("wants_tf")
    report = conformance.Report(tensorflow_imports=conformance._attempts)
    assert [a["module"] for a in report.tensorflow_imports] == ["tensorflow"]
    assert len(report.tensorflow_imports_by(tmp_path)) == 1
    assert report.tensorflow_imports_by(Path(embeddings.__file__).parent) == []
    assert "tensorflow" not in sys.modules
