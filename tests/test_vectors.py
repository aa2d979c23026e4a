"""``--init-vectors``: reading word-vector files, and starting a run's embedding from one."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from embeddings import train, vectors
from embeddings.backends import contract, native
from embeddings.config import parse_args
from embeddings.errors import InvalidInput, MissingFile
from embeddings.model import keras_initial_weights
from embeddings.testing import TINY_TRAIN_FLAGS, cli_error

VOCAB = ["", "[UNK]", "the", "good", "bad", "movie"]


def _write(tmp_path: Path, text: str | bytes, name: str = "v.vec") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _rows(rows: vectors.PretrainedRows) -> dict[int, list[float]]:
    return {int(i): v.tolist() for i, v in zip(rows.ids, rows.vectors, strict=True)}


def test_header_is_optional(tmp_path: Path) -> None:
    body = "good 0.5 -1.25\nabsent 3 4\nmovie 2 0.125\n"
    plain = vectors.read_vectors(_write(tmp_path, body, "a.vec"), VOCAB, 2)
    headed = vectors.read_vectors(_write(tmp_path, "3 2\n" + body, "b.vec"), VOCAB, 2)
    assert _rows(plain) == _rows(headed) == {3: [0.5, -1.25], 5: [2.0, 0.125]}
    assert plain.matched == 2 and plain.words == 5
    assert plain.vectors.dtype == np.float32 and plain.ids.dtype == np.int64


def test_glove_and_fasttext_line_ends(tmp_path: Path) -> None:
    """GloVe: no header, ``\\n``; fastText: a space before the line end; Windows ``\\r\\n``."""
    glove = vectors.read_vectors(_write(tmp_path, "the 1 2\nbad 3 4\n", "g.txt"), VOCAB, 2)
    fasttext = vectors.read_vectors(
        _write(tmp_path, "2 2\r\nthe 1 2 \r\n\r\nbad 3 4 \r\n", "f.vec"), VOCAB, 2)
    assert _rows(glove) == _rows(fasttext) == {2: [1.0, 2.0], 4: [3.0, 4.0]}


def test_values_parse_to_the_nearest_float32(tmp_path: Path) -> None:
    rows = vectors.read_vectors(_write(tmp_path, "good 0.1 -3.4028235e38\n"), VOCAB, 2)
    expected = np.array([np.float32(0.1), np.float32(-3.4028235e38)], dtype=np.float32)
    assert rows.vectors[0].tobytes() == expected.tobytes()


def test_first_occurrence_wins(tmp_path: Path) -> None:
    rows = vectors.read_vectors(_write(tmp_path, "bad 1 1\nbad 2 2\ngood 3 3\n"), VOCAB, 2)
    assert _rows(rows) == {4: [1.0, 1.0], 3: [3.0, 3.0]}


def test_padding_is_never_replaced_and_unk_is_matched(tmp_path: Path) -> None:
    rows = vectors.read_vectors(_write(tmp_path, " 7 7\n[UNK] 1 2\n"), VOCAB, 2)
    assert _rows(rows) == {1: [1.0, 2.0]}


def test_a_token_with_non_utf8_bytes_matches_ours(tmp_path: Path) -> None:
    ours = b"caf\xe9".decode("utf-8", "surrogateescape")  # as our vocabulary holds it
    rows = vectors.read_vectors(_write(tmp_path, b"caf\xe9 1 2\n"), ["", "[UNK]", ours], 2)
    assert _rows(rows) == {2: [1.0, 2.0]}


def test_a_dimension_mismatch_names_the_line_and_both_widths(tmp_path: Path) -> None:
    path = _write(tmp_path, "good 1 2\n\nbad 1 2 3\n")
    with pytest.raises(InvalidInput, match=rf"{path}:3 has 3 values but --embedding-dim is 2; "
                                           r"pass --embedding-dim 3 or another file"):
        vectors.read_vectors(path, VOCAB, 2)
    headed = _write(tmp_path, "2 50\ngood 1 2\n", "h.vec")
    with pytest.raises(InvalidInput, match=rf"{headed}:1 \(header\) declares 50 dimensions "
                                           r"but --embedding-dim is 2"):
        vectors.read_vectors(headed, VOCAB, 2)


@pytest.mark.parametrize("value", ["abc", "", "1.0x"])
def test_a_non_numeric_value_names_the_line(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"the 1 2\ngood {value} 1\n")  # "": two spaces in a row
    with pytest.raises(InvalidInput, match=rf"{path}:2: {value!r} is not a number"):
        vectors.read_vectors(path, VOCAB, 2)


@pytest.mark.parametrize("value", ["nan", "-inf", "1e40"])
def test_a_non_finite_value_names_the_line(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"good 1 {value}\n")
    with pytest.raises(InvalidInput, match=rf"{path}:1: {value!r} is not a finite number"):
        vectors.read_vectors(path, VOCAB, 2)


def test_lines_of_other_tokens_are_only_counted(tmp_path: Path) -> None:
    """Values are parsed only for the vocabulary's tokens; every width is still checked."""
    rows = vectors.read_vectors(_write(tmp_path, "absent x y\ngood 1 2\n"), VOCAB, 2)
    assert _rows(rows) == {3: [1.0, 2.0]}


@pytest.mark.parametrize("text", ["", "\n\n", "5 2\n"])
def test_a_file_without_vectors_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    for call in (lambda: vectors.read_vectors(path, VOCAB, 2),
                 lambda: vectors.check_file(path, 2)):
        with pytest.raises(InvalidInput, match="holds no vector line"):
            call()


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match="does not exist"):
        vectors.read_vectors(tmp_path / "nope.vec", VOCAB, 2)
    with pytest.raises(InvalidInput, match="is not a file"):
        vectors.check_file(tmp_path, 2)


def test_check_file_reads_only_the_first_vector_line(tmp_path: Path) -> None:
    vectors.check_file(_write(tmp_path, "2 2\ngood 1 2\nbad 1 2 3\n"), 2)  # line 3 read later
    with pytest.raises(InvalidInput, match=r":2 has 3 values but --embedding-dim is 2"):
        vectors.check_file(_write(tmp_path, "2 2\ngood 1 2 3\n", "b.vec"), 2)


def test_the_report_names_the_file_and_its_digest(tmp_path: Path) -> None:
    path = _write(tmp_path, "good 1 2\n")
    rows = vectors.read_vectors(path, VOCAB, 2)
    assert rows.report() == {"file": str(path), "matched": 1, "words": 5,
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert rows.summary() == f"--init-vectors {path}: 1 of 5 words matched"


def test_rows_without_a_vector_keep_the_initializer_bit_for_bit(tmp_path: Path) -> None:
    path = _write(tmp_path, "good 0.5 -0.5 1 2\nabsent 9 9 9 9\nmovie 0.25 0 0 0\n")
    config = parse_args(["--vocab-size", "8", "--embedding-dim", "4", "--seed", "3",
                         "--init-vectors", str(path)], "t", "t")
    initial = keras_initial_weights(8, 4, 16, 3)["embedding.embeddings"]
    table, report = contract.initial_table(config, VOCAB, initial.copy())
    changed = np.flatnonzero((table != initial).any(axis=1))
    assert changed.tolist() == [3, 5]
    assert table[3].tolist() == [0.5, -0.5, 1.0, 2.0] and table[5].tolist() == [0.25, 0, 0, 0]
    assert report is not None and report["matched"] == 2 and report["words"] == 5
    plain = parse_args(["--vocab-size", "8", "--embedding-dim", "4", "--seed", "3"], "t", "t")
    same, none = contract.initial_table(plain, VOCAB, initial.copy())
    assert none is None and same.tobytes() == initial.tobytes()


def _spy_initial_table(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Record the embedding the native backend hands to ``fit``."""
    seen: list[np.ndarray] = []
    stock = native.fit

    def spy(model: Any, *args: Any) -> Any:
        seen.append(model.embedding.embeddings.detach().cpu().numpy().copy())
        return stock(model, *args)

    monkeypatch.setattr(native, "fit", spy)
    return seen


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_backends_start_from_the_replaced_rows(small_imdb: Path, tmp_path: Path,
                                                   backend: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Through each backend: the matched rows hold the file's values, every other row the
    seed's initial weights, bit for bit."""
    path = _write(tmp_path, "good 1 2 3 4\nbad -1 -2 -3 -4\nmovie 0.5 0.25 0.125 0\n")
    seen: list[np.ndarray] = []
    if backend == "torch":
        seen = _spy_initial_table(monkeypatch)
    else:
        keras_model = pytest.importorskip("embeddings.keras_model")
        stock = keras_model.set_native_weights

        def spy(model: Any, arrays: dict[str, np.ndarray]) -> None:
            seen.append(np.array(arrays["embedding.embeddings"]))
            stock(model, arrays)

        monkeypatch.setattr(keras_model, "set_native_weights", spy)
    out = tmp_path / "run"
    assert train.main([*TINY_TRAIN_FLAGS, "--embedding-dim", "4", "--data", str(small_imdb),
                       "--backend", backend, "--init-vectors", str(path),
                       "--out", str(out)]) == 0
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    initial = keras_initial_weights(20, 4, 16, 0)["embedding.embeddings"]
    expected = initial.copy()
    for token, row in (("good", [1, 2, 3, 4]), ("bad", [-1, -2, -3, -4]),
                       ("movie", [0.5, 0.25, 0.125, 0])):
        expected[vocabulary.index(token)] = row
    assert len(seen) == 1 and seen[0].tobytes() == expected.tobytes()
    record = json.loads((out / "config.json").read_text())
    assert record["model"]["init_vectors"] == str(path)
    assert record["run"]["init_vectors"]["matched"] == 3


def test_a_runs_vectors_vec_starts_another_run_bit_for_bit(
        small_imdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The round trip: run A writes vectors.vec; run B starts from it with every row but
    the padding equal to A's trained rows, and records the file in its config.json."""
    first, second = tmp_path / "a", tmp_path / "b"
    base = [*TINY_TRAIN_FLAGS, "--data", str(small_imdb)]
    assert train.main([*base, "--out", str(first)]) == 0
    table = load_file(first / "model.safetensors")["embedding.embeddings"]
    vocabulary = json.loads((first / "vocabulary.json").read_text())
    seen = _spy_initial_table(monkeypatch)
    vec = first / "vectors.vec"
    with caplog.at_level(logging.INFO, logger="embeddings.backends.contract"):
        assert train.main([*base, "--init-vectors", str(vec), "--out", str(second)]) == 0
    words = len(vocabulary) - 1
    assert f"--init-vectors {vec}: {words:,} of {words:,} words matched" in caplog.messages
    rows = slice(1, len(vocabulary))
    assert seen[0][rows].tobytes() == table[rows].tobytes()
    untouched = keras_initial_weights(20, 16, 16, 0)["embedding.embeddings"]
    assert seen[0][0].tobytes() == untouched[0].tobytes()  # the padding row
    assert seen[0][len(vocabulary):].tobytes() == untouched[len(vocabulary):].tobytes()
    record = json.loads((second / "config.json").read_text())["run"]["init_vectors"]
    assert record == {"file": str(vec), "matched": words, "words": words,
                      "sha256": hashlib.sha256(vec.read_bytes()).hexdigest()}


def test_a_dimension_mismatch_exits_2_before_the_data_is_read(tmp_path: Path) -> None:
    bad = _write(tmp_path, "good" + " 0.5" * 50 + "\n", "g.txt")
    err = cli_error(["embeddings.train", *TINY_TRAIN_FLAGS, "--data", str(tmp_path / "none"),
                     "--init-vectors", str(bad), "--out", str(tmp_path / "run")])
    assert f"{bad}:1 has 50 values but --embedding-dim is 16; pass --embedding-dim 50" in err
    assert not (tmp_path / "run").exists()


def test_a_later_dimension_mismatch_exits_2_before_training(small_imdb: Path,
                                                           tmp_path: Path) -> None:
    path = _write(tmp_path, "good" + " 0.5" * 16 + "\nbad" + " 0.5" * 15 + "\n")
    err = cli_error(["embeddings.train", *TINY_TRAIN_FLAGS, "--data", str(small_imdb),
                     "--init-vectors", str(path), "--out", str(tmp_path / "run")])
    assert f"{path}:2 has 15 values but --embedding-dim is 16" in err
    assert "Epoch" not in err and not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run.partial-*"))


def test_a_missing_file_exits_2_before_the_data_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "glove.6B.16d.txt"
    err = cli_error(["embeddings.train", *TINY_TRAIN_FLAGS, "--data", str(tmp_path / "none"),
                     "--init-vectors", str(missing), "--out", str(tmp_path / "run")])
    assert err.startswith(f"error: --init-vectors {missing} does not exist")


def test_an_empty_path_is_refused_by_the_flag_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--init-vectors", ""], "p", "d")
    assert "`--init-vectors` must be the path of a word-vector file" in capsys.readouterr().err
