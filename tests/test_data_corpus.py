"""A user's corpus (:mod:`embeddings.data.columns`, :mod:`embeddings.data.corpus`): Parquet,
Arrow, JSON Lines and CSV files and folders of them, their columns and labels, the Keras
split of their rows, and chunked, int32 vectorizing (:mod:`embeddings.backends.vectorized`).
The hub-name case runs against the fake hub of ``test_hub.py`` on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from embeddings import data
from embeddings.backends import vectorized
from embeddings.config import DataConfig, FieldError, RunConfig
from embeddings.data import corpus as corpus_lib
from embeddings.testing import TINY_TRAIN_FLAGS, cli_error, write_imdb_tree
from embeddings.text import TextVectorization

FORMATS = ("parquet", "arrow", "jsonl", "csv")


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``datasets`` converts each corpus into its cache: one under the test's folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))


def write_corpus(path: Path, columns: dict[str, list[Any]]) -> Path:
    """``columns`` as a file of the format its suffix names; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix[1:]
    if kind == "parquet":
        pq.write_table(pa.table(columns), path)
    elif kind == "arrow":  # the Arrow stream format, as datasets writes it
        table = pa.table(columns)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as out:
            out.write_table(table)
    elif kind == "jsonl":
        rows = [dict(zip(columns, values, strict=True))
                for values in zip(*columns.values(), strict=True)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))
    return path


def numbered(n: int) -> dict[str, list[Any]]:
    """Row ``i`` says ``row i``; labels alternate 0, 1."""
    return {"text": [f"row {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}


def texts_of(ds: Any) -> list[str]:
    return list(data.exact_texts(ds))


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_splits_its_rows_by_the_keras_rule(tmp_path: Path, kind: str) -> None:
    """RandomState(123) permutes rows 0..9, the last int(0.2 * 10) = 2 are validation."""
    path = write_corpus(tmp_path / f"corpus.{kind}", numbered(10))
    splits = data.load_splits(path, validation_split=0.2, seed=123, batch_size=4)
    order = np.random.RandomState(123).permutation(10)  # shuffle of 0..9, by hand
    assert sorted(texts_of(splits.val)) == sorted(f"row {i}" for i in order[-2:])
    assert sorted(texts_of(splits.train)) == sorted(f"row {i}" for i in order[:-2])
    assert [int(t.split()[1]) % 2 for t in texts_of(splits.val)] == data.labels(
        splits.val).tolist()
    assert splits.source == str(path)
    assert splits.corpus is not None and len(splits.corpus) == 10


def test_corpus_rows_come_in_the_order_imdb_files_do(small_imdb: Path, tmp_path: Path) -> None:
    """The same reviews as a Parquet file in sorted-walk order split and order exactly as
    the folder does: the rule is the same, on row indices instead of files."""
    reviews = data.read_directory(small_imdb)
    path = write_corpus(tmp_path / "imdb.parquet", {
        "text": [r.raw.decode() for r in reviews], "label": [r.label for r in reviews]})
    for split, seed, batch in ((0.2, 123, 1024), (0.3, 5, 4)):
        ours = data.load_splits(path, validation_split=split, seed=seed, batch_size=batch)
        imdb = data.load_splits(small_imdb, validation_split=split, seed=seed, batch_size=batch)
        for a, b in ((ours.train, imdb.train), (ours.val, imdb.val)):
            assert texts_of(a) == texts_of(b)
            assert data.labels(a).tolist() == data.labels(b).tolist()


def test_folder_reads_its_files_in_sorted_path_order(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    write_corpus(folder / "b.jsonl", {"text": ["b0", "b1"], "label": [1, 0]})
    write_corpus(folder / "a.jsonl", {"text": ["a0"], "label": [0]})
    write_corpus(folder / "sub" / "c.jsonl", {"text": ["c0", "c1"], "label": [1, 1]})
    (folder / "notes.txt").write_text("not a corpus file")
    write_corpus(folder / ".hidden" / "x.jsonl", {"text": ["hidden"], "label": [0]})
    source = data.corpus_source(folder)
    assert source is not None and source.builder == "json"
    assert [Path(f).relative_to(folder).as_posix() for f in source.files] == [
        "a.jsonl", "b.jsonl", "sub/c.jsonl"]
    rows, labels = data.read_corpus(source)
    assert rows["text"] == ["a0", "b0", "b1", "c0", "c1"]
    assert labels.tolist() == [0, 1, 0, 1, 1]


def test_folder_of_two_formats_is_refused(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c" / "a.csv", numbered(2))
    write_corpus(tmp_path / "c" / "b.parquet", numbered(2))
    with pytest.raises(data.DataSourceError, match=r"several formats \(csv, parquet\)"):
        data.corpus_source(tmp_path / "c")


@pytest.mark.parametrize(("given", "expected"), [
    ("hub", None), ("hub:stanfordnlp/imdb", None), ("stanfordnlp/imdb", None),
    ("http://example.com/aclImdb_v1.tar.gz", None), ("aclImdb_v1.tar.gz", None),
    ("hub:someone/reviews", ("hub:someone/reviews", None)),
    ("someone/reviews", ("hub:someone/reviews", None)),
    ("x/y.parquet", ("x/y.parquet", "parquet")), ("y.JSONL", ("y.JSONL", "json")),
    ("y.json", ("y.json", "json")), ("y.csv", ("y.csv", "csv")), ("y.arrow", ("y.arrow", "arrow")),
])
def test_which_sources_are_a_corpus(given: str, expected: tuple[str, str | None] | None,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = data.corpus_source(given)
    assert (found if found is None else (found.name, found.builder)) == expected


def test_imdb_folder_and_existing_owner_name_path_are_not_a_corpus(
        small_imdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data.corpus_source(small_imdb) is None  # no corpus files below it
    (tmp_path / "someone" / "reviews").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert data.corpus_source("someone/reviews") is None  # a local folder, not the hub


def test_column_flags_rename_the_columns(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.csv", {"id": [7, 8, 9], "review": ["x", "y", "z"],
                                             "sentiment": [1, 0, 1]})
    rows, labels = data.read_corpus(data.corpus_source(path), "review", "sentiment")
    assert rows.column_names == ["text", "label"]
    assert rows["text"] == ["x", "y", "z"] and labels.tolist() == [1, 0, 1]


def test_missing_columns_name_the_columns_found_and_the_flags(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.parquet", {"review": ["x"], "stars": [1]})
    with pytest.raises(data.DataSourceError) as err:
        data.read_corpus(data.corpus_source(path))
    assert str(err.value) == (
        f"The corpus {path} has no column 'text' and no column 'label'; its columns are "
        "'review', 'stars'. Name the right ones with --text-column NAME and "
        "--label-column NAME.")
    with pytest.raises(data.DataSourceError, match=r"no column 'label'; .* --label-column NAME\.$"):
        data.read_corpus(data.corpus_source(path), text_column="review")


@pytest.mark.parametrize(("labels", "message"), [
    ([0, 1, 2, 1], "holds 2 (row 2); labels must be 0 or 1"),
    ([0, -1], "holds -1 (row 1); labels must be 0 or 1"),
    (["pos", "neg"], "holds string values (row 0: 'pos'); labels must be 0 or 1"),
    ([0.0, 1.0], "holds double values (row 0: 0.0); labels must be 0 or 1"),
    ([1, None], "has no label in row 1 (null)"),
])
def test_labels_other_than_0_1_are_refused(tmp_path: Path, labels: list[Any],
                                           message: str) -> None:
    path = write_corpus(tmp_path / "c.parquet", {"text": ["t"] * len(labels), "label": labels})
    with pytest.raises(data.DataSourceError) as err:
        data.read_corpus(data.corpus_source(path))
    assert str(err.value).startswith(f"Column 'label' of {path} {message}")
    assert str(err.value).endswith("Map the labels to 0 (negative) and 1 (positive), or point "
                                   "--label-column at a column that holds them.")
    assert "\n" not in str(err.value)


def test_boolean_labels_are_0_and_1(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.jsonl", {"text": ["a", "b", "c"],
                                               "label": [True, False, True]})
    assert data.read_corpus(data.corpus_source(path))[1].tolist() == [1, 0, 1]


@pytest.mark.parametrize(("texts", "message"), [
    ([1, 2], "Column 'text' of {path} holds int64 values, not texts."),
    (["a", None, None], "Column 'text' of {path} has no text in row 1 (null; 2 rows in all)."),
])
def test_text_column_must_hold_texts(tmp_path: Path, texts: list[Any], message: str) -> None:
    path = write_corpus(tmp_path / "c.parquet", {"text": texts, "label": [0] * len(texts)})
    with pytest.raises(data.DataSourceError) as err:
        data.read_corpus(data.corpus_source(path))
    assert str(err.value).startswith(message.format(path=path))


def test_unreadable_file_is_a_data_source_error(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(data.DataSourceError, match=f"^Cannot load the corpus {path}: "):
        data.load_splits(path)


def test_column_flags_are_refused_for_imdb(small_imdb: Path) -> None:
    with pytest.raises(data.DataSourceError, match="the IMDb reviews have none to choose"):
        data.load_splits(small_imdb, text_column="review")


def test_corpus_has_no_test_split(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.csv", numbered(4))
    with pytest.raises(data.DataSourceError, match="has no test split"):
        data.load_test(path)


def test_column_settings_are_checked() -> None:
    with pytest.raises(FieldError, match="`text_column` must be a column name"):
        DataConfig(text_column="")
    with pytest.raises(FieldError, match="`label_column` must differ from text_column"):
        DataConfig(text_column="x", label_column="x")
    assert RunConfig.from_preset("tutorial", label_column="stars").data.label_column == "stars"


def test_chunks_hand_out_the_kept_texts_of_consecutive_rows() -> None:
    corpus = data.Corpus(pa.chunked_array([["a", "b"], ["c", "d", "e"]]),
                         np.zeros(5, np.int64), np.array([0, 2, 3]), np.array([4, 1]))
    keep, position = corpus.layout()
    assert keep.tolist() == [True, False, True, True, False]
    assert position.tolist() == [0, 1, 1, 2, 0]
    assert list(corpus.chunks(keep, size=2)) == [
        (slice(0, 2), [b"a"]), (slice(2, 4), [b"c", b"d"]), (slice(4, 5), [])]
    assert [texts for _, texts in corpus.chunks(size=4)] == [[b"a", b"b", b"c", b"d"], [b"e"]]


def test_chunks_stream_the_column_across_files_and_batches(tmp_path: Path) -> None:
    """Batches of 3 and 2 rows in one file, 4 in the next, read 3 rows at a time."""
    files = []
    for name, batches in (("a", [["t0", "t1", "t2"], ["t3", "t4"]]), ("b", [list("5678")])):
        schema = pa.schema([("other", pa.int64()), ("review", pa.string())])
        files.append(str(tmp_path / f"{name}.arrow"))
        with pa.OSFile(files[-1], "wb") as sink, pa.ipc.new_stream(sink, schema) as out:
            for texts in batches:
                out.write_batch(pa.record_batch([pa.array([0] * len(texts)), pa.array(texts)],
                                                schema=schema))
    mapped = pa.chunked_array([["unused"] * 9])  # never read: the files are
    corpus = data.Corpus(mapped, np.zeros(9, np.int64), np.arange(6), np.arange(6, 9),
                         tuple(files), "review")
    keep = np.array([True, False] * 4 + [True])
    assert list(corpus.chunks(keep, size=3)) == [
        (slice(0, 3), [b"t0", b"t2"]), (slice(3, 6), [b"t4"]), (slice(6, 9), [b"6", b"8"])]
    short = data.Corpus(pa.chunked_array([["x"] * 10]), np.zeros(10, np.int64),
                        np.arange(8), np.arange(8, 10), tuple(files), "review")
    with pytest.raises(RuntimeError, match="hold 9 rows, its table 10"):
        list(short.chunks())


def test_imdb_rows_keep_the_bytes_of_invalid_utf8(tmp_path: Path) -> None:
    base = write_imdb_tree(tmp_path, {"neg/0_1.txt": b"caf\xe9 bad", "pos/0_9.txt": "good"})
    splits = data.load_splits(base, validation_split=0.5)
    rows = splits.rows()
    assert sorted(t for _, texts in rows.chunks() for t in texts) == [b"caf\xe9 bad", b"good"]
    assert rows.train_rows.tolist() == [0] and rows.val_rows.tolist() == [1]


def test_chunked_vectorizing_gives_the_ids_of_one_pass(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """3,000 rows read 700 at a time: the vocabulary and ids of adapting and vectorizing
    all the texts at once, as int32, each subset in its pass-0 order."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(3000)]
    path = write_corpus(tmp_path / "c.parquet", {"text": texts,
                                                 "label": rng.integers(0, 2, 3000).tolist()})
    config = RunConfig.from_preset("tutorial", data=str(path), vocab_size=50,
                                   sequence_length=12, ngrams=2, batch_size=64)
    splits = data.load_splits(path, batch_size=64)
    monkeypatch.setattr(corpus_lib, "CHUNK_ROWS", 700)
    got = vectorized.vectorize(config, splits, torch.device("cpu"))
    whole = TextVectorization(max_tokens=50, standardize="tutorial",
                              output_sequence_length=12, ngrams=(1, 2))
    train = [texts[i] for i in splits.corpus.train_rows]
    whole.adapt(train)
    assert got.vectorizer.get_vocabulary() == whole.get_vocabulary()
    assert got.train_ids.dtype == torch.int32
    assert np.array_equal(got.train_ids.numpy(), whole(train))
    assert np.array_equal(got.val_ids.numpy(), whole([texts[i] for i in splits.corpus.val_rows]))
    assert got.val_labels.tolist() == data.labels(splits.val).tolist()


def test_cli_trains_on_a_corpus_with_other_column_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sentiment = rng.integers(0, 2, 60).tolist()
    texts = [("good fine" if s else "bad awful") + " movie plot" for s in sentiment]
    path = write_corpus(tmp_path / "c.jsonl", {"review": texts, "sentiment": sentiment})
    proc = subprocess.run([sys.executable, "-m", "embeddings.train", "--data", str(path),
                           *TINY_TRAIN_FLAGS, "--text-column", "review", "--label-column",
                           "sentiment", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["run"]["data_source"] == str(path)
    assert [record["run"]["train_reviews"], record["run"]["val_reviews"]] == [48, 12]
    assert "adapt: 48 reviews" in proc.stderr and "vectorize: 60 reviews" in proc.stderr


def test_cli_refuses_a_bad_label_in_one_line(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.csv", {"text": ["a", "b"], "label": [0, 5]})
    message = cli_error(["embeddings.train", "--data", str(path), *TINY_TRAIN_FLAGS,
                         "--out", str(tmp_path / "run")],
                        env={"HF_DATASETS_CACHE": str(tmp_path / "hf")}, timeout=120)
    assert message == (f"error: Column 'label' of {path} holds 5 (row 1); labels must be 0 or 1 "
                       "(or false/true). Map the labels to 0 (negative) and 1 (positive), or "
                       "point --label-column at a column that holds them.")
    assert not (tmp_path / "run").exists()


READ_CORPUS = """
import json, sys
from embeddings import data
try:
    splits = data.load_splits(sys.argv[1], validation_split=0.25, text_column="review",
                              label_column="stars")
except data.DataSourceError as err:
    print(f"DataSourceError: {err}", file=sys.stderr)
    sys.exit(2)
print(json.dumps([splits.source, data.exact_texts(splits.train), data.exact_texts(splits.val)]))
"""


@pytest.mark.parametrize("name", ["hub:testorg/reviews", "testorg/reviews", "hub:testorg/none"])
def test_hub_dataset_is_read_from_the_fake_hub(tmp_path: Path, name: str) -> None:
    from test_hub import CARD, COMMIT, PARQUET, FakeHub, hub_env

    table = pa.table({"review": [f"r{i}" for i in range(8)], "stars": [0, 1] * 4})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    hub = FakeHub("testorg/reviews", {"README.md": CARD, PARQUET: sink.getvalue().to_pybytes()})
    try:
        proc = subprocess.run([sys.executable, "-c", READ_CORPUS, name], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120, check=False,
                              env=hub_env(hub.endpoint, tmp_path / "hfhome"))
    finally:
        hub.close()
    if name.endswith("none"):
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "DataSourceError: Cannot load the hub dataset hub:testorg/none: " in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    source, train, val = json.loads(proc.stdout)
    order = np.random.RandomState(123).permutation(8)
    assert source == "hub:testorg/reviews"
    assert sorted(val) == sorted(f"r{i}" for i in order[-2:])
    assert sorted(train) == sorted(f"r{i}" for i in order[:-2])
    assert f"GET /datasets/testorg/reviews/resolve/{COMMIT}/{PARQUET}" in hub.requests
    assert hub.unknown == []
