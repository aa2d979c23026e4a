"""The backend contract: every flag reaches every backend, or is refused by name.

The walk sets each flag of :class:`~embeddings.config.RunConfig` to a value other than
the tutorial's, trains every backend with it on a small synthetic corpus, and holds each
one to the native backend's result with the same flags (the native backend is held to
TensorFlow's on IMDb by ``nox -s parity``): the same ``val_accuracy`` and accuracy in
every epoch, the loss within float32 noise, the same weight shapes, vocabulary and review
counts.  A flag that did not reach a backend would leave it training with the default
instead, which the walk shows as a difference; each flag also changes the native result
(or, for ``--deterministic`` and ``--device``, reaches the op or the device), so none
can pass by doing nothing.  The TensorFlow backend walks the same flags in a
subprocess when the ``tf`` extra is installed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest

from embeddings import backends, ops
from embeddings.config import BACKENDS, RunConfig, parse_args
from embeddings.data import load_splits
from embeddings.testing import assert_close, tensorflow_python

BASE = ["--epochs", "3", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
        "--device", "cpu", "--learning-rate", "0.01"]

# A non-default value for every flag that changes what is computed.
WALK: dict[str, list[str]] = {
    "validation_split": ["--validation-split", "0.3"],
    "split_seed": ["--split-seed", "5"],
    "reshuffle": ["--reshuffle"],
    "vocab_size": ["--vocab-size", "9"],
    "sequence_length": ["--sequence-length", "6"],
    "embedding_dim": ["--embedding-dim", "3"],
    "hidden_units": ["--hidden-units", "5"],
    "batch_size": ["--batch-size", "5"],
    "epochs": ["--epochs", "2"],
    "learning_rate": ["--learning-rate", "0.05"],
    "seed": ["--seed", "4"],
    "init_vectors": ["--init-vectors", "{vectors}"],  # the file native_results writes
    "ngrams": ["--ngrams", "2"],
    "mask_padding": ["--mask-padding"],
}
# Vectors for three words of the small corpus, one absent word and a later "good" (ignored).
VECTORS = ("good 0.5 -0.25 0.125 0.75 -0.5 0.25 0.375 -0.125 0.5 0.625 -0.75 0.25 0.125 "
           "-0.375 0.5 -0.625\n"
           "bad -0.5 0.25 -0.125 -0.75 0.5 -0.25 -0.375 0.125 -0.5 -0.625 0.75 -0.25 -0.125 "
           "0.375 -0.5 0.625\n"
           "absent 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n"
           "movie 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 -0.1 -0.2 -0.3 -0.4 -0.5 -0.6 -0.7 -0.8\n"
           "good 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9\n")
# Flags checked another way: where they go rather than what they change.
ELSEWHERE = {
    "data": "every run of the walk reads the corpus given by --data",
    "backend": "the walk's other axis",
    "device": "test_device_reaches_every_backend",
    "deterministic": "test_deterministic_reaches_the_op",
    "table_update": "test_table_update_rows_is_torchs_and_refused_by_the_others",
    "precision": "test_precision_bf16_is_torchs_and_refused_by_the_others (its values: "
                 "tests/test_precision.py)",
    "out": "a run-directory setting, handled by embeddings.train (tests/test_train.py)",
    "checkpoint_every": "when the run saves checkpoints, not what it computes "
                        "(tests/test_resume.py)",
    "text_column": "a corpus file's column, read by embeddings.data (tests/test_data_corpus.py)",
    "label_column": "a corpus file's column, read by embeddings.data (tests/test_data_corpus.py)",
}


def _fields() -> set[str]:
    hints = typing.get_type_hints(RunConfig)
    return {f.name for section in dataclasses.fields(RunConfig)
            if dataclasses.is_dataclass(hints[section.name])  # not the preset's name
            for f in dataclasses.fields(hints[section.name])}


def _config(corpus: Path, *extra: str, backend: str = "torch") -> RunConfig:
    return parse_args([*BASE, *extra, "--data", str(corpus), "--backend", backend], "t", "t")


def _walk(native_results: dict[str, Any], flag: str) -> list[str]:
    """The walk's argv for ``flag``, with the fixture file's path filled in."""
    return [a.format(vectors=native_results["vectors"]) for a in WALK[flag]]


def _train(config: RunConfig) -> backends.TrainResult:
    splits = load_splits(config.data.data, validation_split=config.data.validation_split,
                         seed=config.data.split_seed, batch_size=config.train.batch_size)
    return backends.get(config.train.backend).train(config, splits, backends.Hooks())


def _summary(result: backends.TrainResult) -> dict[str, Any]:
    """What two backends given the same flags must agree on (losses compared apart)."""
    return {"val_accuracy": result.history["val_accuracy"],
            "accuracy": result.history["accuracy"],
            "shapes": {k: list(v.shape) for k, v in result.weights.items()},
            "vocabulary": result.vocabulary,
            "counts": [result.train_reviews, result.val_reviews]}


def _assert_same(ours: backends.TrainResult, native: backends.TrainResult) -> None:
    assert _summary(ours) == _summary(native)
    # Same update; Keras pools with torch's mean instead of TensorFlow's lanes (unless the
    # padding is masked), which moves the logits by float32 ulps of order-1 values (PARITY.md
    # section 8): 1e-6 relative, or 1e-7 absolute where a loss is near zero (a steep
    # learning rate on 40 reviews).
    for key in ("loss", "val_loss"):
        assert_close(ours.history[key], native.history[key], rtol=1e-6, atol=1e-7)


def test_the_walk_covers_every_flag() -> None:
    """A new flag must join the walk (or say where it is checked)."""
    assert set(WALK) | set(ELSEWHERE) == _fields()
    assert not set(WALK) & set(ELSEWHERE)


def test_every_backend_has_a_module() -> None:
    assert [backends.get(name).name for name in BACKENDS] == list(BACKENDS)
    with pytest.raises(ValueError, match="backend must be one of torch, keras, tf"):
        backends.get("jax")


@pytest.fixture(scope="module")
def native_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The native backend's result for the base flags and for each flag of the walk."""
    from embeddings.testing import write_imdb_tree
    from tests.conftest import small_corpus

    root = tmp_path_factory.mktemp("walk")
    corpus = write_imdb_tree(root, small_corpus())
    vectors = root / "vectors.vec"
    vectors.write_text(VECTORS)
    walk: dict[str, Any] = {"corpus": corpus, "vectors": vectors,
                            "results": {"": _train(_config(corpus))}}
    for flag in WALK:
        walk["results"][flag] = _train(_config(corpus, *_walk(walk, flag)))
    return walk


@pytest.mark.parametrize("flag", list(WALK))
def test_each_flag_changes_the_native_result(native_results: dict[str, Any], flag: str) -> None:
    base, changed = native_results["results"][""], native_results["results"][flag]
    assert _summary(changed) != _summary(base) or changed.history["loss"] != base.history["loss"]


@pytest.mark.parametrize("flag", list(WALK))
def test_each_flag_reaches_the_keras_backend(native_results: dict[str, Any], flag: str) -> None:
    pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    config = _config(native_results["corpus"], *_walk(native_results, flag), backend="keras")
    _assert_same(_train(config), native_results["results"][flag])


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_deterministic_reaches_the_op(small_imdb: Path, backend: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--deterministic must reach the embedding backward of every backend (on the CPU it
    changes no value: every CPU sum is already in a fixed order)."""
    if backend == "keras":
        pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    seen: list[bool | None] = []
    stock = ops.bag.resolve_deterministic

    def spy(deterministic: bool | None, tensor: Any) -> bool:
        seen.append(deterministic)
        return stock(deterministic, tensor)

    monkeypatch.setattr(ops.bag, "resolve_deterministic", spy)
    plain = _train(_config(small_imdb, backend=backend))
    assert seen and not any(seen)
    seen.clear()
    exact = _train(_config(small_imdb, "--deterministic", backend=backend))
    assert seen and all(seen)
    assert exact.history["loss"] == plain.history["loss"]


def test_table_update_rows_is_torchs_and_refused_by_the_others(small_imdb: Path) -> None:
    """--table-update rows changes what torch trains (the rows a batch of two reviews leaves
    out keep their values); keras and tf refuse it (test_torch_only_flags_are_refused...)."""
    dense = _train(_config(small_imdb, "--batch-size", "2"))
    rows = _train(_config(small_imdb, "--batch-size", "2", "--table-update", "rows"))
    assert rows.history["loss"] != dense.history["loss"]


def test_precision_bf16_is_torchs_and_refused_by_the_others(small_imdb: Path) -> None:
    """--precision bf16 trains on the CPU (the pure-torch path): it changes the losses, but
    only by bfloat16's rounding; keras and tf refuse it (test_torch_only_flags_are_refused...)."""
    exact = _train(_config(small_imdb))
    bf16 = _train(_config(small_imdb, "--precision", "bf16"))
    assert bf16.history["loss"] != exact.history["loss"]
    assert {k: w.dtype for k, w in bf16.weights.items()} == {  # the float32 table, no copy
        k: w.dtype for k, w in exact.weights.items()}
    # bfloat16 keeps 8 significant bits (relative rounding up to 2**-9, 0.2 %) of every
    # element the forward reads; 3 epochs at the steep learning rate 0.01 move the losses
    # by up to 0.5 % (measured: 2.5e-3 of 0.52); 1 % bounds that, not a float32 slip alone.
    for key in ("loss", "val_loss"):
        assert_close(bf16.history[key], exact.history[key], rtol=1e-2, atol=0)


@pytest.mark.parametrize("name", ["keras", "tf"])
@pytest.mark.parametrize(("flag", "value", "why"), [
    ("--table-update", "rows", "Adam updates every row"),
    ("--precision", "bf16", "Embedding looks the table up in float32")])
def test_torch_only_flags_are_refused_by_the_others(small_imdb: Path, name: str, flag: str,
                                                    value: str, why: str) -> None:
    """Refused by name before any data is read; torch honours them."""
    assert backends.get("torch").unsupported(_config(small_imdb, flag, value)) == {}
    with pytest.raises(backends.UnsupportedFlag,
                       match=f"{flag} cannot be honoured by --backend {name}: .*{why}.*"
                             f"Received: --backend {name} with {flag}; drop the flag"):
        backends.check(backends.get(name), _config(small_imdb, flag, value, backend=name))


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_device_reaches_every_backend(small_imdb: Path, backend: str) -> None:
    if backend == "keras":
        pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    assert _train(_config(small_imdb, backend=backend)).device == "cpu"


class _Partial:
    """A backend that cannot honour --reshuffle, to check the refusal itself."""

    name = "partial"

    def unsupported(self, config: RunConfig) -> dict[str, str]:
        return {"reshuffle": "it reads one fixed order"} if config.data.reshuffle else {}

    def check_ready(self, config: RunConfig) -> None:
        pass

    def train(self, config: RunConfig, data: Any, hooks: backends.Hooks) -> Any:
        raise AssertionError("a refused run must not train")


def test_a_flag_a_backend_cannot_honour_is_refused_by_name(small_imdb: Path) -> None:
    backends.check(_Partial(), _config(small_imdb))  # nothing to refuse
    with pytest.raises(backends.UnsupportedFlag,
                       match=r"--reshuffle cannot be honoured by --backend partial: it reads "
                             r"one fixed order\. Received: .*drop the flag"):
        backends.check(_Partial(), _config(small_imdb, "--reshuffle"))


_TF_WALK = """
import json, sys
from embeddings import backends
from embeddings.config import parse_args
from embeddings.data import load_splits
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    config = parse_args(argv, "t", "t")
    splits = load_splits(config.data.data, validation_split=config.data.validation_split,
                         seed=config.data.split_seed, batch_size=config.train.batch_size)
    r = backends.get("tf").train(config, splits, backends.Hooks())
    out[name] = {"history": r.history, "vocabulary": r.vocabulary, "device": r.device,
                 "shapes": {k: list(v.shape) for k, v in r.weights.items()},
                 "counts": [r.train_reviews, r.val_reviews]}
from tensorflow.python.framework import config as tf_config  # no public reader
out["deterministic"] = tf_config.is_op_determinism_enabled()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.tf
def test_every_flag_reaches_the_tensorflow_backend(native_results: dict[str, Any]) -> None:
    """The walk on --backend tf, one subprocess (Keras holds one backend per process);
    --deterministic last, since it switches TensorFlow's op determinism on for good."""
    python, env = tensorflow_python()
    corpus = native_results["corpus"]
    walk = {flag: _walk(native_results, flag) for flag in WALK}
    runs = {flag: [*BASE, *argv, "--data", str(corpus), "--backend", "tf"]
            for flag, argv in {"": [], **walk, "deterministic": ["--deterministic"]}.items()}
    proc = subprocess.run([python, "-c", _TF_WALK, json.dumps(runs)], capture_output=True,
                          text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out.pop("deterministic") is True
    for flag, theirs in out.items():
        native = native_results["results"][flag if flag != "deterministic" else ""]
        assert theirs["history"]["val_accuracy"] == native.history["val_accuracy"], flag
        assert theirs["history"]["accuracy"] == native.history["accuracy"], flag
        assert theirs["vocabulary"] == native.vocabulary, flag
        assert theirs["counts"] == [native.train_reviews, native.val_reviews], flag
        assert theirs["shapes"] == {k: list(v.shape) for k, v in native.weights.items()}, flag
        assert theirs["device"] == "tensorflow:/CPU:0", flag
        # PARITY.md section 8: the 16 -> 1 matmul and the loss reduction differ by ulps.
        assert_close(theirs["history"]["loss"], native.history["loss"], rtol=1e-6, atol=1e-7)
