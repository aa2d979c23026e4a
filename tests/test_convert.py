"""Keras files <-> run directories, bit for bit, without unpickling."""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embeddings import convert, keras_file, predict, runs, train
from embeddings.model import SentimentClassifier
from embeddings.testing import assert_close, tensorflow_python
from embeddings.text import TextVectorization
from tests.conftest import small_corpus

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


# -- the settings that change scores: --mask-padding and --ngrams --------------------------

BIGRAM_ARGS = [*ARGS, "--vocab-size", "40", "--ngrams", "2", "--mask-padding"]


@pytest.fixture
def bigram_run(small_imdb: Path, tmp_path: Path) -> Path:
    """A run trained on single words and bigrams, padding left out of the mean."""
    out = tmp_path / "bigram_run"
    assert train.main([*BIGRAM_ARGS, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def bigram_texts(vocabulary: list[str]) -> list[str]:
    """Short reviews (so padding fills most of the 12 positions) that hold bigram tokens."""
    bigrams = [t for t in vocabulary if " " in t]
    assert len(bigrams) >= 2, vocabulary  # the corpus's frequent pairs make it in
    return [bigrams[0], f"{bigrams[1]} plot", "good movie", "bad film story"]


def edited(source: Path, dest: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """``source`` (a ``.keras`` archive) with ``edit`` applied to its parsed config.json."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name == keras_file.CONFIG_MEMBER:
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            out.writestr(name, data)
    return dest


def layer_config(config: dict[str, Any], class_name: str) -> dict[str, Any]:
    """The config of the one layer of ``class_name`` in a Sequential's config.json."""
    (conf,) = [layer["config"] for layer in config["config"]["layers"]
               if layer["class_name"] == class_name]
    return conf


@pytest.mark.parametrize(("tokens", "expected"), [
    (["", "[UNK]", "the", "movie"], 1),
    (["", "[UNK]", "the", "of the", "good"], 2),
    (["", "[UNK]", "a", "of the film", "of the"], 3),
    (["", "[UNK]", " ", "a  b"], 2),  # empty pieces are no words
    ([""], 1),
])
def test_vocabulary_ngrams_counts_space_separated_words(tokens: list[str],
                                                        expected: int) -> None:
    assert convert.vocabulary_ngrams(tokens) == expected


def test_bigram_masked_run_round_trips_through_keras(bigram_run: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    exported = convert.run_to_keras(bigram_run, tmp_path / "bigrams.keras")
    read = keras_file.read_keras(exported)
    assert (read.mask_zero, read.ngrams) == (True, None)  # ngrams: in the vocabulary sidecar
    with caplog.at_level("INFO", logger="embeddings.convert"):
        back = convert.keras_to_run(exported, tmp_path / "back")
    assert "ngrams=2, read from its vocabulary" in caplog.text
    original, restored = runs.load_run(bigram_run), runs.load_run(back)
    assert (restored.settings.text.ngrams, restored.settings.model.mask_padding) == (2, True)
    assert restored.settings.text.sequence_length == 12
    assert restored.vocabulary == original.vocabulary
    assert all(torch.equal(torch.as_tensor(original.weights[k]),
                           torch.as_tensor(restored.weights[k])) for k in original.weights)
    texts = bigram_texts(original.vocabulary)
    expected = predict.logits(texts, bigram_run)
    assert torch.equal(predict.logits(texts, back), expected)
    # Negative twins: dropping either setting changes these scores.
    ids = torch.from_numpy(original.vectorizer()(texts))  # (N, T)
    assert (ids == 0).any() and not torch.equal(ids, torch.from_numpy(
        TextVectorization(standardize=original.standardize, output_sequence_length=12,
                          vocabulary=original.vocabulary)(texts)))
    unmasked = SentimentClassifier.from_weights(original.weights, mask_padding=False)
    with torch.no_grad():
        assert (unmasked(ids) - expected).abs().max() > 1e-4
    unigram = predict.logits(texts, convert.keras_to_run(exported, tmp_path / "uni",
                                                          ngrams=1))
    assert (unigram - expected).abs().max() > 1e-4


def test_exported_bigram_model_masks_padding_in_stock_keras(bigram_run: Path,
                                                           tmp_path: Path) -> None:
    from embeddings.keras_model import keras

    exported = convert.run_to_keras(bigram_run, tmp_path / "m.keras")
    model = keras.saving.load_model(exported, safe_mode=True)
    assert model.layers[0].mask_zero is True
    run = runs.load_run(bigram_run)
    ids = run.vectorizer()(bigram_texts(run.vocabulary))
    # Keras's masked mean and the native one sum in their own float32 orders.
    assert_close(model.predict(ids, verbose=0)[:, 0], predict.logits(
        bigram_texts(run.vocabulary), bigram_run), rtol=0, atol=1e-6)


def keras_bigram_file(path: Path, ngrams: int | tuple[int, ...]) -> tuple[Path, Any, Any]:
    """A ``.keras`` file built by Keras: ``TextVectorization(ngrams=ngrams)`` adapted on the
    small corpus, then the tutorial model with ``Embedding(mask_zero=True)``.

    Returns:
        tuple: the file, the vectorizer layer and the ids model (the same layers).
    """
    from embeddings import keras_model
    from embeddings.keras_model import keras
    from embeddings.layers import TextVectorization as KerasTextVectorization

    vectorizer = KerasTextVectorization(max_tokens=60, ngrams=ngrams, output_sequence_length=10,
                                        name="text_vectorization")
    vectorizer.adapt([body.decode() for body in small_corpus().values()])
    ids_model = keras_model.build_model(vectorizer.vocabulary_size(), 8, 4, compile=False,
                                        exact_embedding=False, mask_zero=True)
    model = keras.Sequential([keras.Input((1,), dtype="string"), vectorizer, *ids_model.layers])
    model.save(path)
    return path, vectorizer, ids_model


def test_keras_file_with_mask_zero_and_ngrams_converts(tmp_path: Path) -> None:
    path, vectorizer, ids_model = keras_bigram_file(tmp_path / "bigrams.keras", 2)
    read = keras_file.read_keras(path)
    assert (read.mask_zero, read.ngrams, read.sequence_length) == (True, 2, 10)
    out = convert.keras_to_run(path, tmp_path / "run")
    run = runs.load_run(out)
    assert (run.settings.text.ngrams, run.settings.model.mask_padding) == (2, True)
    assert run.vocabulary == vectorizer.get_vocabulary()
    texts = ["good movie", "the bad film plot", "a story"]
    ids = np.asarray(vectorizer(texts))
    np.testing.assert_array_equal(run.vectorizer()(texts), ids)
    assert_close(predict.logits(texts, out), ids_model.predict(ids, verbose=0)[:, 0],
                 rtol=0, atol=1e-6)
    unmasked = SentimentClassifier.from_weights(run.weights, mask_padding=False)
    with torch.no_grad():
        assert (unmasked(torch.from_numpy(ids)) - predict.logits(texts, out)).abs().max() > 1e-4


def test_keras_file_ngrams_one_to_n_list_reads_as_n(tmp_path: Path) -> None:
    path, _, _ = keras_bigram_file(tmp_path / "a.keras", (1, 2))
    assert keras_file.read_keras(path).ngrams == 2
    unigram = edited(path, tmp_path / "b.keras",
                     lambda c: layer_config(c, "TextVectorization").update(ngrams=None))
    assert keras_file.read_keras(unigram).ngrams == 1


@pytest.mark.parametrize("ngrams", [[2], [1, 3], [2, 1], [], [1.0, 2.0], [True, 2]])
def test_ngrams_other_than_one_to_n_are_refused(tmp_path: Path, ngrams: list[Any]) -> None:
    path, _, _ = keras_bigram_file(tmp_path / "a.keras", 2)
    bad = edited(path, tmp_path / "bad.keras",
                 lambda c: layer_config(c, "TextVectorization").update(ngrams=ngrams))
    with pytest.raises(ValueError, match=r"`config\.layers\[1\]\.config\.ngrams` .*only "
                       r"ngrams=\(1, \.\.\., N\) is supported.*Received: ngrams="):
        convert.keras_to_run(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("ngrams", "phrase"), [
    (0, "must lie between 1 and 16"), (17, "must lie between 1 and 16"),
    ("2", "must be an integer or a list or null"), (True, "must be an integer or a list"),
])
def test_ngrams_of_wrong_type_or_size_are_refused(tmp_path: Path, ngrams: Any,
                                                  phrase: str) -> None:
    bad = edited(FIXTURES / "tutorial_small.keras", tmp_path / "bad.keras",
                 lambda c: layer_config(c, "TextVectorization").update(ngrams=ngrams))
    with pytest.raises(ValueError, match="ngrams") as err:
        keras_file.read_keras(bad)
    assert phrase in str(err.value)


def test_mask_zero_is_read_and_type_checked(tmp_path: Path) -> None:
    assert keras_file.read_keras(FIXTURES / "tutorial_small.keras").mask_zero is False
    absent = edited(FIXTURES / "tutorial_small.keras", tmp_path / "absent.keras",
                    lambda c: layer_config(c, "Embedding").pop("mask_zero"))
    assert keras_file.read_keras(absent).mask_zero is False
    masked = edited(FIXTURES / "tutorial_small.keras", tmp_path / "masked.keras",
                    lambda c: layer_config(c, "Embedding").update(mask_zero=True))
    assert keras_file.read_keras(masked).mask_zero is True
    assert runs.load_run(convert.keras_to_run(masked, tmp_path / "run")
                         ).settings.model.mask_padding is True
    assert keras_file.read_keras(FIXTURES / "tutorial_small.weights.h5").mask_zero is False
    for value in ("true", None, 1):
        def set_mask(config: dict[str, Any], value: Any = value) -> None:
            layer_config(config, "Embedding")["mask_zero"] = value

        bad = edited(FIXTURES / "tutorial_small.keras", tmp_path / "bad.keras", set_mask)
        with pytest.raises(ValueError, match=r"`config\.layers\[2\]\.config\.mask_zero` must "
                           r"be true or false"):
            keras_file.read_keras(bad)
        bad.unlink()


def test_cli_ngrams_option_sets_and_checks_the_runs_ngrams(
        bigram_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exported = tmp_path / "m.keras"
    assert convert.main([str(bigram_run), str(exported)]) == 0
    assert convert.main([str(exported), str(tmp_path / "inferred")]) == 0
    assert runs.load_run(tmp_path / "inferred").settings.text.ngrams == 2
    assert convert.main([str(exported), str(tmp_path / "three"), "--ngrams", "3"]) == 0
    assert runs.load_run(tmp_path / "three").settings.text.ngrams == 3
    capsys.readouterr()
    assert convert.main([str(exported), str(tmp_path / "zero"), "--ngrams", "0"]) == 2
    assert "--ngrams: `ngrams` must lie between 1 and 16" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()


def test_run_whose_vocabulary_hides_its_ngrams_warns_on_export(
        run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run trained with --ngrams 2 whose vocabulary kept no bigram: the export says how
    to convert it back, since the file cannot show it."""
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["text"]["ngrams"] = 2
    config_path.write_text(json.dumps(config))
    assert not any(" " in t for t in runs.load_run(run_dir).vocabulary)
    with caplog.at_level("WARNING", logger="embeddings.convert"):
        exported = convert.run_to_keras(run_dir, tmp_path / "m.keras")
    assert "convert m.keras back with --ngrams 2" in caplog.text
    assert runs.load_run(convert.keras_to_run(exported, tmp_path / "a")
                         ).settings.text.ngrams == 1
    assert runs.load_run(convert.keras_to_run(exported, tmp_path / "b", ngrams=2)
                         ).settings.text.ngrams == 2
