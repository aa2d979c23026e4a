"""The run directory: its format, staged writing, validated loading; the Projector TSVs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from embeddings import runs, weights
from embeddings.config import RunConfig
from embeddings.model import keras_initial_weights
from embeddings.runs import directory, write_projector_tsv


def test_tsv_rows_skip_padding_and_print_numpy_float32(tmp_path: Path) -> None:
    table = np.array([[9.0, 9.0], [0.1, -0.012345678], [1e-5, 1e16], [0.0, -0.0]],
                     dtype=np.float32)
    write_projector_tsv(table, ["", "[UNK]", "the", "café"], tmp_path)
    assert (tmp_path / "vectors.tsv").read_bytes() == (
        b"0.1\t-0.012345678\n1e-05\t1e+16\n0.0\t-0.0\n")
    assert (tmp_path / "metadata.tsv").read_bytes() == "[UNK]\nthe\ncafé\n".encode()


def test_values_round_trip_to_the_same_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = (rng.standard_normal((50, 16)) * 10.0 ** rng.uniform(-8, 1, (50, 16))).astype(
        np.float32)
    write_projector_tsv(table, [str(i) for i in range(50)], tmp_path)
    lines = (tmp_path / "vectors.tsv").read_text().splitlines()
    back = np.array([[np.float32(x) for x in line.split("\t")] for line in lines])
    assert np.array_equal(back, table[1:])


def test_invalid_utf8_tokens_are_written_as_their_bytes(tmp_path: Path) -> None:
    token = b"caf\xe9".decode("utf-8", "surrogateescape")
    write_projector_tsv(np.zeros((2, 1), np.float32), ["", token], tmp_path)
    assert (tmp_path / "metadata.tsv").read_bytes() == b"caf\xe9\n"


def test_table_smaller_than_vocabulary_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights.shape"):
        write_projector_tsv(np.zeros((2, 3), np.float32), ["", "a", "b"], tmp_path)


def _write(out: Path, *, vocabulary: list[str] | None = None, **config: object) -> Path:
    arrays = keras_initial_weights(8, 3, 2, seed=0)
    settings = RunConfig.from_dict({"text": {"vocab_size": 8}, "model": {"embedding_dim": 3,
                                                                        "hidden_units": 2}})
    with runs.staged(out) as staging:
        runs.write_run(staging, weights=arrays, vocabulary=vocabulary or ["", "[UNK]", "a", "b"],
                       config=runs.run_config(settings, {"backend": "torch", **config}),
                       history={"loss": [0.5]})
    return out


def test_a_run_round_trips_with_its_format_version(tmp_path: Path) -> None:
    out = _write(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        set(runs.FILES) - {runs.LOGS_DIR, runs.CHECKPOINT_DIR})  # they come from training
    config = json.loads((out / "config.json").read_text())
    assert list(config)[:2] == ["format_version", "data"] and config["format_version"] == 1
    run = runs.load_run(out)
    assert run.vocabulary == ["", "[UNK]", "a", "b"] and run.history == {"loss": [0.5]}
    expected = keras_initial_weights(8, 3, 2, seed=0)
    assert all(np.array_equal(run.weights[n], expected[n]) for n in weights.NAMES)
    assert run.settings.text.vocab_size == 8 and run.standardize == "tutorial"
    assert run.vectorizer()(["a b zz"]).tolist()[0][:3] == [2, 3, 1]


def test_staging_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), runs.staged(tmp_path / "run") as staging:
        (staging / "x").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    _write(tmp_path / "run")
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(runs.RunExistsError, match="already exists.*never overwritten"):
        _write(tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "empty")  # an empty folder is taken over
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_appearing_while_staged_is_not_overwritten(tmp_path: Path) -> None:
    with pytest.raises(runs.RunExistsError), runs.staged(tmp_path / "run"):
        (tmp_path / "run").mkdir()  # someone else fills the folder first
        (tmp_path / "run" / "notes.txt").write_text("theirs")
    assert (tmp_path / "run" / "notes.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_second_writer_in_one_process_is_refused(tmp_path: Path) -> None:
    with runs.staged(tmp_path / "run"):
        with pytest.raises(runs.RunExistsError, match=r"Another process \(pid \d+\) is "
                                                      "already writing a run to"):
            _write(tmp_path / "run")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def _break(out: Path, name: str, content: object) -> None:
    path = out / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("config.json", b"{not json", r"config.json is not readable JSON"),
    ("config.json", [1, 2], r"config.json must hold a JSON object"),
    ("config.json", {"format_version": 2}, r"config.json has format_version 2.*upgrade"),
    ("config.json", {"format_version": 1, "text": {"vocab_size": 8, "colour": 1}},
     r"config.json.*config.text.*has only the fields"),
    ("config.json", {"format_version": 1, "text": {"vocab_size": 9},
                     "model": {"embedding_dim": 3, "hidden_units": 2}},
     r"config.json disagrees with model.safetensors.*text.vocab_size=9 but the weights have 8"),
    ("vocabulary.json", {"a": 1}, r"vocabulary.json must hold a JSON list"),
    ("vocabulary.json", ["a", "b"], r"vocabulary.json must start with '' \(padding\)"),
    ("vocabulary.json", ["", "[UNK]"] + [str(i) for i in range(7)],
     r"vocabulary.json has 9 tokens but the embedding table only 8 rows"),
    ("model.safetensors", b"\x00" * 20, r"model.safetensors is not a readable safetensors"),
])
def test_a_malformed_file_is_named(tmp_path: Path, name: str, content: object,
                                   message: str) -> None:
    out = _write(tmp_path / "run")
    _break(out, name, content)
    with pytest.raises(runs.RunFormatError, match=message):
        runs.load_run(out)


def test_weights_of_another_model_are_named(tmp_path: Path) -> None:
    out = _write(tmp_path / "run")
    arrays = keras_initial_weights(8, 3, 2, seed=0)
    save_file({**arrays, "dense.kernel": np.zeros((4, 2), np.float32)},
              out / "model.safetensors")
    with pytest.raises(runs.RunFormatError, match=r"model.safetensors: the weights' shapes"):
        runs.load_run(out)
    save_file({"x": np.zeros(1, np.float32)}, out / "model.safetensors")
    with pytest.raises(runs.RunFormatError, match=r"model.safetensors does not hold the tutorial"):
        runs.load_run(out)


def test_a_folder_without_the_files_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(runs.RunFormatError, match="model.safetensors is missing"):
        runs.load_run(tmp_path)


def test_runs_without_a_format_version_read_as_version_1(tmp_path: Path) -> None:
    out = _write(tmp_path / "run")
    config = json.loads((out / "config.json").read_text())
    del config["format_version"]
    (out / "config.json").write_text(json.dumps(config))
    assert runs.load_run(out).vocabulary[2:] == ["a", "b"]


def test_staging_left_by_a_killed_writer_does_not_block_a_retry(tmp_path: Path) -> None:
    """A conversion or training killed mid-write leaves its hidden staging folder with no
    live owner: the retry removes it and writes the run."""
    stale = tmp_path / ".run.partial-00000000000000000001-1-dead"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    _write(tmp_path / "run")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert runs.load_run(tmp_path / "run").vocabulary[2:] == ["a", "b"]


def _files(out: Path) -> dict[str, bytes]:
    names = ("vectors.tsv", "metadata.tsv", "vectors.vec", "projector_config.pbtxt")
    return {name: (out / name).read_bytes() for name in names if (out / name).exists()}


def test_a_second_process_writes_the_projector_files_of_a_large_vocabulary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """From PARALLEL_ROWS tokens a real second process writes them; the bytes are the same
    as written here, and an n-gram vocabulary's vectors.vec keeps its single words."""
    vocabulary = ["", "[UNK]", "a", "a b", "b", "é", "b a", "c"]
    monkeypatch.setattr(directory, "PARALLEL_ROWS", 1)
    out = _write(tmp_path / "run", vocabulary=vocabulary)
    with runs.staged(tmp_path / "ngrams") as staging:  # the same run, with bigrams
        runs.write_run(staging, weights=keras_initial_weights(8, 3, 2, seed=0),
                       vocabulary=vocabulary, config=runs.run_config(
                           RunConfig.from_dict({"text": {"vocab_size": 8, "ngrams": 2},
                                                "model": {"embedding_dim": 3, "hidden_units": 2}}),
                           {"backend": "torch"}), history={})
    assert "worker" not in caplog.text and "failed" not in caplog.text
    table = keras_initial_weights(8, 3, 2, seed=0)["embedding.embeddings"]
    for run, ngrams in ((out, 1), (tmp_path / "ngrams", 2)):
        here = tmp_path / f"here-{ngrams}"
        here.mkdir()
        directory.write_embedding_files(here, table, vocabulary, ngrams)
        assert _files(run) == _files(here)
        assert ("vectors.vec" in _files(run)) == (ngrams == 2)  # unigrams: "a b" cannot be
    words = [line.split(" ")[0] for line in
             (tmp_path / "ngrams" / "vectors.vec").read_text("utf-8").splitlines()[1:]]
    assert words == ["[UNK]", "a", "b", "é", "c"]


def test_a_failed_projector_process_leaves_the_files_to_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(directory, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(directory, "_start_embedding_files", lambda out: subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        stderr=subprocess.PIPE))
    out = _write(tmp_path / "run")
    assert "failed (exit 3: boom); writing them here" in caplog.text
    here = tmp_path / "here"
    here.mkdir()
    directory.write_embedding_files(
        here, keras_initial_weights(8, 3, 2, seed=0)["embedding.embeddings"],
        ["", "[UNK]", "a", "b"], 1)
    assert _files(out) == _files(here)
