"""Inference on raw text from a run directory, both backends, and the CLI."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from embeddings import predict, review_input, runs, train
from embeddings.model import SentimentClassifier
from embeddings.testing import TINY_TRAIN_FLAGS, assert_close, cli_error

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


def test_keras_text_model_scores_raw_strings_as_the_torch_backend(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    keras_model = pytest.importorskip("embeddings.keras_model",
                                      reason="the keras extra is not installed")
    texts = ["good good movie", "bad film", "the story", b"caf\xe9 \xff good", ""]
    model = keras_model.text_model(run_dir)
    # The Keras layer gives the run's vectorizer's ids, as torch tensors.
    expected_ids = torch.from_numpy(runs.load_run(run_dir).vectorizer()(texts))
    assert torch.equal(model.vectorizer(texts), expected_ids)
    probabilities = model(texts)  # (N, 1)
    assert probabilities.shape == (5, 1)
    assert_close(probabilities[:, 0], predict.predict(texts, run_dir), rtol=0, atol=1e-6)
    path = tmp_path / "text-to-score.keras"
    model.save(path)
    loaded = keras_model.keras.saving.load_model(path, safe_mode=True)
    assert torch.equal(loaded(texts), probabilities)
    assert loaded.vectorizer.get_vocabulary() == runs.load_run(run_dir).vocabulary


def test_cli_keras_backend_scores_through_the_keras_layer(run_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    texts = ["good good movie", "bad bad movie", "film"]
    assert predict.main(["--run", str(run_dir), "--backend", "keras", *texts]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [text for _, text in lines] == texts
    shown = torch.tensor([float(p) for p, _ in lines])
    assert_close(shown, predict.predict(texts, run_dir), rtol=0, atol=1.5e-6)  # 6 decimals
    assert shown[0] > 0.5 > shown[1]


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


# --run latest ------------------------------------------------------------------------------


def _set_written(run: Path, seconds: int) -> None:
    """Pretend that ``run``'s config.json was written ``seconds`` after the epoch."""
    os.utime(run / runs.CONFIG_FILE, ns=(seconds * 10**9, seconds * 10**9))


def test_latest_is_the_run_written_last(small_imdb: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    older, newer = root / "zz-trained-first", root / "20240101-000000"  # older sorts last
    for out, seed in ((older, "1"), (newer, "2")):
        assert train.main([*TINY_TRAIN_FLAGS, "--seed", seed, "--data", str(small_imdb),
                           "--out", str(out)]) == 0
    _set_written(older, 1_000_000_000)
    _set_written(newer, 1_000_000_100)
    staging = root / ".20240101-000001.partial-1"  # hidden: a run still being written
    shutil.copytree(older, staging)
    (root / "notes").mkdir()  # newer (now), but holds no run
    (root / "README").write_text("not a run")
    _set_written(staging, 1_000_000_200)
    assert runs.latest_run(root) == newer

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert predict.main(["--run", "latest", "good film", "bad plot"]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"note: --run latest is {Path('runs', '20240101-000000')}\n"
    shown = [float(line.split("\t")[0]) for line in captured.out.splitlines()]
    expected = predict.predict(["good film", "bad plot"], newer).tolist()
    assert shown == [float(f"{p:.6f}") for p in expected]
    assert expected != predict.predict(["good film", "bad plot"], older).tolist()


@pytest.mark.parametrize(("setup", "phrase"), [
    ("no_folder", "there is no such folder"),
    ("only_staging_and_notes", "found no run directory in"),
])
def test_latest_without_a_run_is_one_line(setup: str, phrase: str, run_dir: Path,
                                          tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if setup == "only_staging_and_notes":
        shutil.copytree(run_dir, work / "runs" / ".new.partial-7")
        (work / "runs" / "notes").mkdir()
    err = cli_error(["embeddings.predict", "--run", "latest", "a good film"], cwd=work)
    assert phrase in err and str(work / "runs") in err
    assert "python -m embeddings.train" in err and "--run DIR" in err


# Reviews from files ------------------------------------------------------------------------

REVIEWS = ["good movie", 'a "quoted", bad\nplot over two lines', "bad actor"]


@pytest.mark.parametrize(("name", "content"), [
    # One review per line: CRLF endings, a BOM, whitespace-only lines skipped.
    ("reviews.txt", b'\xef\xbb\xbfgood movie\r\n\r\na "quoted", bad\\nplot over two lines\r\n'
                    b"  \t\r\nbad actor"),
    ("reviews.jsonl", b'{"text": "good movie", "label": 1}\n\n'
                      b'{"text": "a \\"quoted\\", bad\\nplot over two lines"}\n'
                      b'{"text": "   "}\n{"id": 3, "text": "bad actor"}\n'),
    ("reviews.csv", b'id,text\r\n1,good movie\r\n\r\n2,"a ""quoted"", bad\nplot over two '
                    b'lines"\r\n9,  \r\n3,bad actor\r\n'),
])
def test_reviews_come_from_text_jsonl_and_csv_files(name: str, content: bytes, run_dir: Path,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    expected = list(REVIEWS)
    if name.endswith(".txt"):  # a line cannot hold a newline: this one keeps a backslash-n
        expected[1] = expected[1].replace("\n", "\\n")
    assert review_input.read_reviews(path) == (expected, 2)

    capsys.readouterr()
    assert predict.main(["--run", str(run_dir), "--input", str(path)]) == 0
    captured = capsys.readouterr()
    kind = "rows" if name.endswith(".csv") else "lines"
    assert captured.err == f"note: skipped 2 empty {kind} in {path}\n"
    lines = captured.out.splitlines()
    probabilities = predict.predict(expected, run_dir).tolist()
    assert [line.split("\t") for line in lines] == [
        [f"{p:.6f}", text.replace("\n", "\\n")]
        for p, text in zip(probabilities, expected, strict=True)]


def test_format_flag_reads_jsonl_from_stdin(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"text": "good one"}\n{"text": "bad one"}\n'))
    assert predict.main(["--run", str(run_dir), "--input", "-", "--format", "jsonl"]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == [
        "good one", "bad one"]


def test_text_is_shown_on_one_line_and_clipped(run_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reviews.jsonl"
    long = "good " * 30
    path.write_text(json.dumps({"text": "tab\there\r\nend\x1b[31m"}) + "\n"
                    + json.dumps({"text": long}) + "\n")
    assert predict.main(["--run", str(run_dir), "--input", str(path)]) == 0
    shown = [line.split("\t", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert shown == ["tab\\there\\r\\nend\\x1b[31m", long[:77] + "..."]


def test_bytes_that_are_not_utf8_reach_the_vectorizer_unchanged(
        run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"good \xff\xfe movie\nbad caf\xc3\xa9\n")
    assert predict.main(["--run", str(run_dir), "--input", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = predict.predict([b"good \xff\xfe movie", "bad café"], run_dir).tolist()
    assert [line.split("\t") for line in lines] == [
        [f"{expected[0]:.6f}", "good \\xff\\xfe movie"], [f"{expected[1]:.6f}", "bad café"]]


@pytest.mark.parametrize(("content", "phrase"), [
    (b'{"text": "good"}\n\n{"text": "bad"\n', ":3: not valid JSON"),
    (b'{"text": "good"}\n{"review": "bad"}\n', ":2: each line must be a JSON object with a "
                                               "\"text\" string"),
    (b'{"text": "good"}\n["bad"]\n', ":2: each line must be a JSON object"),
    (b'{"text": 5}\n', ':1: each line must be a JSON object with a "text" string'),
    (b'{"text": "\\ud800 lone"}\n', ":1: the text holds a lone UTF-16 surrogate"),
])
def test_a_bad_jsonl_line_is_named_by_file_and_line(content: bytes, phrase: str, run_dir: Path,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(content)
    err = cli_error(["embeddings.predict", "--run", str(run_dir), "--input", str(path)])
    assert f"error: {path}{phrase}" in err


@pytest.mark.parametrize(("content", "phrase"), [
    (b"id,review\n1,good movie\n", "needs one column named 'text' in its header row. "
                                   "Received: columns ['id', 'review']"),
    (b"text,id,text\ngood,1,bad\n", "Received: two or more 'text' columns"),
    (b"", "is empty"),
    (b'id,text\n1,"good movie"\n2\n', ":3: the row has 1 fields and none under the text column"),
    (b'id,text\n1,good\n2,"bad\nmovie\n', ":3: not valid CSV (unexpected end of data)"),
])
def test_a_csv_without_a_usable_text_column_is_refused(content: bytes, phrase: str,
                                                       run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    err = cli_error(["embeddings.predict", "--run", str(run_dir), "--input", str(path)])
    assert f"error: {path}" in err and phrase in err


@pytest.mark.parametrize(("argv", "stdin", "phrase"), [
    (["--input", "MISSING"], None, "does not exist"),
    (["--input", "TMP"], None, "is a folder"),
    (["--input", "EMPTY"], None, "holds no reviews (2 empty lines)"),
    ([], " \n\n", "standard input holds no reviews (2 empty lines)"),
    (["--input", "EMPTY", "good film"], None, "cannot be combined with --input or --format"),
])
def test_unusable_input_is_one_line(argv: list[str], stdin: str | None, phrase: str,
                                    run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n")
    paths = {"MISSING": str(tmp_path / "nothing.txt"), "TMP": str(tmp_path),
             "EMPTY": str(tmp_path / "empty.txt")}
    err = cli_error(["embeddings.predict", "--run", str(run_dir),
                     *[paths.get(a, a) for a in argv]], stdin=stdin)
    assert phrase in err
