"""The embedding table for viewers: TensorBoard's Projector (checked against a real
TensorBoard server) and ``vectors.vec``."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from embeddings import runs
from embeddings.config import RunConfig
from embeddings.model import keras_initial_weights
from embeddings.runs.events import event_file_bytes
from embeddings.runs.projector import (
    EVENTS_FILE,
    PROJECTOR_CONFIG_FILE,
    VEC_FILE,
    VECTORS_FILE,
    value_rows,
    write_projector_tsv,
    write_tensorboard_projector,
    write_vec,
)

# vectors.vec --------------------------------------------------------------------------


def test_vec_is_a_header_then_each_token_and_its_values(tmp_path: Path) -> None:
    table = np.array([[9.0, 9.0], [0.1, -0.012345678], [1e-5, 1e16], [0.0, -0.0]],
                     dtype=np.float32)
    write_vec(tmp_path, table, ["", "[UNK]", "the", "café"])
    assert (tmp_path / VEC_FILE).read_bytes() == (
        "3 2\n[UNK] 0.1 -0.012345678\nthe 1e-05 1e+16\ncafé 0.0 -0.0\n".encode())


def test_the_values_printed_once_serve_both_files(tmp_path: Path) -> None:
    """``value_rows`` is what each writer prints, and a writer given the rows writes them
    (a run prints the table once for ``vectors.tsv`` and ``vectors.vec``)."""
    table = np.array([[9.0, 9.0], [0.1, -0.012345678], [1e-5, 1e16]], dtype=np.float32)
    vocabulary = ["", "[UNK]", "the"]
    assert value_rows(table) == ["9.0\t9.0", "0.1\t-0.012345678", "1e-05\t1e+16"]
    write_tensorboard_projector(tmp_path / "printed", table, vocabulary)
    write_vec(tmp_path / "printed", table, vocabulary)
    write_tensorboard_projector(tmp_path / "given", table, vocabulary, value_rows(table))
    write_vec(tmp_path / "given", table, vocabulary, value_rows(table))
    for name in (VECTORS_FILE, VEC_FILE):
        assert (tmp_path / "given" / name).read_bytes() == (
            tmp_path / "printed" / name).read_bytes()
    other = value_rows(table * 2)
    write_projector_tsv(table, vocabulary, tmp_path / "other", other)
    write_vec(tmp_path / "other", table, vocabulary, other)
    assert (tmp_path / "other" / VECTORS_FILE).read_text() == "0.2\t-0.024691356\n2e-05\t2e+16\n"
    assert (tmp_path / "other" / VEC_FILE).read_text() == (
        "2 2\n[UNK] 0.2 -0.024691356\nthe 2e-05 2e+16\n")


def test_vec_parses_back_to_the_table_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = (rng.standard_normal((60, 16)) * 10.0 ** rng.uniform(-38, 38, (60, 16))).astype(
        np.float32)
    table[5, :3] = [0.0, -0.0, np.float32(1e-45)]  # signed zeros and a subnormal
    vocabulary = ["", "[UNK]"] + [f"w{i}" for i in range(2, 50)]  # rows 50..59 unused
    write_vec(tmp_path, table, vocabulary)
    header, *lines = (tmp_path / VEC_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    assert header == "49 16"
    tokens = [line.split(" ")[0] for line in lines]
    back = np.array([[np.float32(x) for x in line.split(" ")[1:]] for line in lines])
    assert tokens == vocabulary[1:]
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), table[1:50].view(np.uint32))


def test_vec_keeps_undecodable_token_bytes(tmp_path: Path) -> None:
    token = b"caf\xe9".decode("utf-8", "surrogateescape")
    write_vec(tmp_path, np.ones((2, 1), np.float32), ["", token])
    assert (tmp_path / VEC_FILE).read_bytes() == b"1 1\ncaf\xe9 1.0\n"


@pytest.mark.parametrize("token", ["new york", "a\tb", "line\n", "\r"])
def test_vec_refuses_tokens_its_format_cannot_hold(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValueError, match="whitespace"):
        write_vec(tmp_path, np.zeros((3, 2), np.float32), ["", "[UNK]", token])
    assert not (tmp_path / VEC_FILE).exists()


def test_vec_refuses_a_table_smaller_than_the_vocabulary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights.shape"):
        write_vec(tmp_path, np.zeros((2, 3), np.float32), ["", "a", "b"])


# TensorBoard's files ------------------------------------------------------------------


def test_projector_config_points_at_the_tsvs_beside_it(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    write_tensorboard_projector(tmp_path, np.eye(3, dtype=np.float32), ["", "[UNK]", "a"])
    text = (tmp_path / PROJECTOR_CONFIG_FILE).read_text()
    assert text == ('embeddings {\n  tensor_name: "embedding"\n  tensor_path: "vectors.tsv"\n'
                    '  metadata_path: "metadata.tsv"\n}\n')
    config = text_format.Parse(text, ProjectorConfig())
    (embedding,) = config.embeddings
    assert (tmp_path / embedding.tensor_path).read_text() == "0.0\t1.0\t0.0\n0.0\t0.0\t1.0\n"
    assert (tmp_path / embedding.metadata_path).read_text() == "[UNK]\na\n"


def test_event_file_is_the_record_tensorboards_writer_starts_with(tmp_path: Path) -> None:
    import io

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    RecordWriter(buffer).write(
        Event(wall_time=1764633600.25, file_version="brain.Event:2").SerializeToString())
    assert event_file_bytes(1764633600.25) == buffer.getvalue()

    write_tensorboard_projector(tmp_path, np.eye(3, dtype=np.float32), ["", "[UNK]", "a"])
    before = time.time()
    (event,) = EventFileLoader(str(tmp_path / EVENTS_FILE)).Load()
    assert event.file_version == "brain.Event:2" and 0 < before - event.wall_time < 60


def test_projector_refuses_a_vocabulary_of_padding_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="besides the padding"):
        write_tensorboard_projector(tmp_path, np.zeros((2, 3), np.float32), [""])
    assert list(tmp_path.iterdir()) == []


# A real TensorBoard -------------------------------------------------------------------


def _vocabulary(size: int) -> list[str]:
    # '\x85' (NEL) ends a line for Python's splitlines() but not for the projector.
    return (["", "[UNK]", "the", "café", "naïve", "don't", "\x85", "a\xa0b"]
            + [f"word{i}" for i in range(8, size)])


# What JavaScript's String.prototype.trim() removes: the projector's page skips metadata
# lines that hold nothing else.
_JS_WHITESPACE = ("\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                  "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")


def _labels(metadata: bytes) -> list[str]:
    """The labels the projector's page reads from a one-column ``metadata.tsv``: one per
    ``\\n``-separated line, blank lines skipped."""
    return [line for line in metadata.decode("utf-8").split("\n") if line.strip(_JS_WHITESPACE)]


def _write(out: Path, size: int, seed: int = 0) -> np.ndarray:
    """A run directory as training writes it (``write_run`` writes the projector files and
    ``vectors.vec``); returns its embedding table."""
    arrays = keras_initial_weights(size, 16, 4, seed=seed)
    settings = RunConfig.from_dict({"text": {"vocab_size": size},
                                    "model": {"embedding_dim": 16, "hidden_units": 4}})
    vocabulary = _vocabulary(size)
    with runs.staged(out) as staging:
        runs.write_run(staging, weights=arrays, vocabulary=vocabulary,
                       config=runs.run_config(settings, {"backend": "torch"}),
                       history={"loss": [0.5]})
        # Training's scalars are TensorBoard runs of their own: the projector must not
        # mistake them for the run.
        (staging / runs.LOGS_DIR / "train").mkdir(parents=True)
        (staging / runs.LOGS_DIR / "train" / "events.out.tfevents.1.host").write_bytes(
            event_file_bytes(1.0))
    return arrays["embedding.embeddings"]


def test_a_run_holds_the_projector_files_and_the_vec(tmp_path: Path) -> None:
    table = _write(tmp_path / "run", 20)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {PROJECTOR_CONFIG_FILE, EVENTS_FILE, VEC_FILE, runs.VECTORS_FILE,
            runs.METADATA_FILE} <= names
    vec = (tmp_path / "run" / VEC_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    tsv = (tmp_path / "run" / runs.VECTORS_FILE).read_text().split("\n")[:-1]
    assert vec[0] == "19 16" and len(tsv) == 19
    assert [line.split(" ", 1)[0] for line in vec[1:]] == _vocabulary(20)[1:]
    assert [line.split(" ", 1)[1] for line in vec[1:]] == [line.replace("\t", " ")
                                                            for line in tsv]
    assert runs.load_run(tmp_path / "run").weights["embedding.embeddings"].shape == table.shape


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(base: str, route: str, **params: str) -> bytes:
    url = base + route + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


@contextmanager
def _tensorboard(logdir: Path) -> Iterator[Callable[..., bytes]]:
    """A TensorBoard server on ``logdir`` (127.0.0.1, a free port); yields ``get(route,
    **params)`` for its projector plugin's routes.  The server is stopped on exit."""
    for _attempt in range(3):  # another process may take the port before TensorBoard
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            get = functools.partial(_get, f"http://127.0.0.1:{port}/data/plugin/projector/")
            deadline = time.monotonic() + 90
            while server.poll() is None and time.monotonic() < deadline:
                try:
                    get("runs")
                    break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.2)
            else:
                if server.poll() is None:
                    raise TimeoutError(f"TensorBoard did not answer on port {port} in 90 s")
                continue  # it exited: most likely the port was taken; try another
            yield get
            return
        finally:
            server.terminate()
            try:
                output = server.communicate(timeout=15)[0]
            except subprocess.TimeoutExpired:
                server.kill()
                output = server.communicate()[0]
            last_output = output.decode(errors="replace")
    raise RuntimeError(f"TensorBoard did not start:\n{last_output[-3000:]}")


def _runs(get: Callable[..., bytes], expected: int) -> list[str]:
    """The projector's runs, once it lists ``expected`` of them (it scans the logdir in
    the background after starting)."""
    deadline = time.monotonic() + 60
    while True:
        found = json.loads(get("runs"))
        if len(found) >= expected or time.monotonic() > deadline:
            return sorted(found)
        time.sleep(0.5)


def _points(get: Callable[..., bytes], run: str) -> tuple[list[str], np.ndarray]:
    """The labels and vectors TensorBoard serves for ``run``, checked against its config."""
    info = json.loads(get("info", run=run))
    (embedding,) = info["embeddings"]
    assert embedding["tensorName"] == "embedding"
    rows, dim = (int(n) for n in embedding["tensorShape"])
    labels = _labels(get("metadata", run=run, name="embedding"))
    tensor = np.frombuffer(get("tensor", run=run, name="embedding"), np.float32)
    return labels, tensor.reshape(rows, dim)


def test_tensorboard_shows_every_token_but_padding_as_a_labelled_point(
        tmp_path: Path) -> None:
    """At the tutorial's size: 10,000 tokens, so 9,999 labelled points."""
    table = _write(tmp_path / "run", 10_000)
    with _tensorboard(tmp_path / "run") as get:
        assert _runs(get, 1) == ["."]
        labels, vectors = _points(get, ".")
    assert len(labels) == 9_999 and labels == _vocabulary(10_000)[1:]
    assert "[UNK]" in labels and "" not in labels
    assert np.array_equal(vectors.view(np.uint32), table[1:].view(np.uint32))


def test_tensorboard_on_a_folder_of_runs_shows_each_runs_projector(tmp_path: Path) -> None:
    _write(tmp_path / "runs" / "a", 30, seed=1)
    table = _write(tmp_path / "runs" / "b", 40, seed=2)
    with _tensorboard(tmp_path / "runs") as get:
        assert _runs(get, 2) == ["a", "b"]
        labels_a, _ = _points(get, "a")
        labels_b, vectors_b = _points(get, "b")
    assert len(labels_a) == 29 and len(labels_b) == 39 and labels_b[0] == "[UNK]"
    assert np.array_equal(vectors_b, table[1:])


def test_tensorboard_shows_a_trained_runs_epoch_scalars(small_imdb: Path, tmp_path: Path) -> None:
    """The run's own event files (embeddings.runs.events), read by a real TensorBoard."""
    from embeddings import train

    run = tmp_path / "run"
    assert train.main(["--epochs", "3", "--batch-size", "8", "--vocab-size", "20",
                       "--sequence-length", "12", "--device", "cpu", "--data",
                       str(small_imdb), "--out", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    with _tensorboard(run) as get:
        scalars = functools.partial(_get, get.args[0].replace("/projector/", "/scalars/"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tags = json.loads(scalars("tags"))
            if {"logs/train", "logs/validation"} <= set(tags):
                break
            time.sleep(0.5)
        for folder, prefix in (("logs/train", ""), ("logs/validation", "val_")):
            assert sorted(tags[folder]) == ["epoch_accuracy", "epoch_loss"]
            for tag, key in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy")):
                points = json.loads(scalars("scalars", run=folder, tag=tag))
                assert [step for _, step, _ in points] == [0, 1, 2]
                assert [value for _, _, value in points] == history[prefix + key]
