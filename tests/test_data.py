"""IMDb sources, the Keras split and order, downloads (against a local server), bad input."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from embeddings import data
from embeddings.testing import write_imdb_tree


def make_tarball(base: Path, target: Path) -> bytes:
    """Pack an ``aclImdb`` folder like the original archive and return the bytes."""
    with tarfile.open(target, "w:gz") as tar:
        tar.add(base, arcname="aclImdb")
    return target.read_bytes()


def test_directory_walk_is_sorted_like_keras(small_imdb: Path) -> None:
    reviews = data.read_directory(small_imdb)
    paths = [r.path for r in reviews]
    # neg before pos, names in Python string order, unsup/ and urls_*.txt ignored
    assert paths == sorted(paths, key=lambda p: (p.split("/")[0] != "neg", p))
    assert {r.label for r in reviews if r.path.startswith("neg/")} == {0}
    assert {r.label for r in reviews if r.path.startswith("pos/")} == {1}
    assert len(reviews) == 40


def test_nested_folders_follow_sorted_walk(tmp_path: Path) -> None:
    base = write_imdb_tree(tmp_path, {"neg/b.txt": "1", "neg/a/z.txt": "2", "neg/A.TXT": "3",
                                      "neg/c.md": "x", "pos/a.txt": "4"})
    paths = [r.path for r in data.read_directory(base)]
    assert paths == ["neg/A.TXT", "neg/b.txt", "neg/a/z.txt", "pos/a.txt"]


@pytest.mark.parametrize("depth", ["aclImdb", "aclImdb/train", "."])
def test_directory_can_be_named_at_any_level(small_imdb: Path, depth: str) -> None:
    root = (small_imdb.parent / depth).resolve()
    assert len(data.read_directory(root)) == 40


def test_tarball_is_read_in_place_with_the_same_reviews(small_imdb: Path, tmp_path: Path) -> None:
    make_tarball(small_imdb, tmp_path / "imdb.tar.gz")
    assert data.read_tarball(tmp_path / "imdb.tar.gz") == data.read_directory(small_imdb)


def test_invalid_utf8_keeps_its_bytes(tmp_path: Path) -> None:
    base = write_imdb_tree(tmp_path, {"neg/0_1.txt": b"caf\xe9 bad", "pos/0_9.txt": "good"})
    train, val = data.load_imdb(base, validation_split=0.5)
    both = [row for ds in (train, val) for row in ds]
    rows = {row["path"]: (row["text"], row["raw"]) for row in both}
    text, raw = rows["neg/0_1.txt"]
    assert raw == b"caf\xe9 bad" and "\ufffd" in text
    assert rows["pos/0_9.txt"] == ("good", None)
    exact = data.exact_texts(train) + data.exact_texts(val)
    assert b"caf\xe9 bad" in exact and "good" in exact


def test_split_is_numpy_random_state_shuffle_then_tail() -> None:
    train, val = data.split_indices(10, 0.2, 123)
    order = list(range(10))
    np.random.RandomState(123).shuffle(order)
    assert train.tolist() == order[:8] and val.tolist() == order[8:]


def test_load_imdb_orders_rows_by_the_tf_data_shuffle(small_imdb: Path) -> None:
    from embeddings.tfrandom import DEFAULT_GRAPH_SEED, shuffle_order

    reviews = data.read_directory(small_imdb)
    train_idx, _ = data.split_indices(len(reviews), 0.25, 5)
    train, val = data.load_imdb(small_imdb, validation_split=0.25, seed=5, batch_size=2)
    expected = [reviews[i].path for i in train_idx[shuffle_order(30, 16, DEFAULT_GRAPH_SEED, 5)]]
    assert list(train["path"]) == expected
    assert len(val) == 10 and not set(train["path"]) & set(val["path"])
    assert train.features["label"].names == ["neg", "pos"]


@pytest.mark.parametrize("split", [0.0, 1.0, -0.1, 1.5])
def test_validation_split_out_of_range_is_rejected(small_imdb: Path, split: float) -> None:
    with pytest.raises(ValueError, match="validation_split"):
        data.load_imdb(small_imdb, validation_split=split)


def test_missing_path_says_how_to_point_at_data(tmp_path: Path) -> None:
    with pytest.raises(data.DataSourceError, match="does not exist.*EMBEDDINGS_DATA"):
        data.read_source(tmp_path / "nope")


def test_folder_without_pos_is_rejected(tmp_path: Path) -> None:
    base = write_imdb_tree(tmp_path, {"neg/0_1.txt": "x"})
    with pytest.raises(data.DataSourceError, match="neg/.*pos/"):
        data.read_directory(base)


def test_empty_class_folders_are_rejected(tmp_path: Path) -> None:
    for cls in ("neg", "pos"):
        (tmp_path / cls).mkdir()
    (tmp_path / "pos" / "notes.md").write_text("x")
    with pytest.raises(data.DataSourceError, match="No .txt reviews under `neg/`"):
        data.read_directory(tmp_path)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    base = write_imdb_tree(tmp_path, {"neg/0_1.txt": "x", "pos/0_9.txt": "y"})
    (base / "train" / "pos" / "1_8.txt").symlink_to(tmp_path / "missing.txt")
    with pytest.raises(data.DataSourceError, match="1_8.txt"):
        data.read_directory(base)


def test_corrupt_tarball_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(data.DataSourceError, match="tar archive"):
        data.read_source(path)


def test_tarball_without_reviews_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("aclImdb/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(data.DataSourceError, match="train/neg"):
        data.read_tarball(path)


def test_environment_variable_selects_the_source(small_imdb: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDINGS_DATA", str(small_imdb))
    reviews, where = data.read_source()
    assert len(reviews) == 40 and where == str(small_imdb)


# -- downloads, against a server on this machine ------------------------------------------


class _Server:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/aclImdb_v1.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server(small_imdb: Path, tmp_path: Path) -> Iterator[_Server]:
    server = _Server(make_tarball(small_imdb, tmp_path / "served.tar.gz"))
    yield server
    server.close()


def test_download_verifies_extracts_and_caches(archive_server: _Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digest = hashlib.sha256(archive_server.payload).hexdigest()
    target = data.download_imdb(archive_server.url, digest, cache)
    assert target == cache / "aclImdb" and len(data.read_directory(target)) == 40
    assert data.download_imdb(archive_server.url, digest, cache) == target
    assert archive_server.hits == 1  # downloaded once
    assert sorted(os.listdir(cache)) == ["aclImdb"]  # no temporary leftovers


def test_download_with_wrong_checksum_keeps_nothing(archive_server: _Server,
                                                    tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(data.DataSourceError, match="corrupt.*sha256"):
        data.download_imdb(archive_server.url, "0" * 64, cache)
    assert os.listdir(cache) == []


def test_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(data.DataSourceError, match="Cannot download"):
        data.download_imdb("http://127.0.0.1:9/aclImdb_v1.tar.gz", None, tmp_path)


def test_fallbacks_reach_the_url_after_cache_and_hub_fail(
    archive_server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("hub unreachable")

    monkeypatch.delenv("EMBEDDINGS_DATA", raising=False)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(data, "IMDB_URL", archive_server.url)
    monkeypatch.setattr(data, "IMDB_SHA256", hashlib.sha256(archive_server.payload).hexdigest())
    reviews, where = data.read_source()
    assert len(reviews) == 40 and where.startswith("download")
    # The next call finds the cache first and does not download again.
    reviews, where = data.read_source()
    assert where.startswith("local cache") and archive_server.hits == 1


def test_all_fallbacks_failing_lists_each_attempt(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("hub unreachable")

    monkeypatch.delenv("EMBEDDINGS_DATA", raising=False)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(data, "IMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    with pytest.raises(data.DataSourceError) as err:
        data.read_source()
    message = str(err.value)
    for what in ("local cache", "hub unreachable", "Cannot download", "--data PATH"):
        assert what in message


# -- the real data --------------------------------------------------------------------------


@pytest.mark.imdb
def test_real_training_split_has_the_tutorial_counts(imdb_split) -> None:  # type: ignore[no-untyped-def]
    train, val = imdb_split
    assert (len(train), len(val)) == (20000, 5000)
    assert sum(train["label"]) / len(train) == pytest.approx(0.49715, abs=1e-9)
    assert sum(val["label"]) / len(val) == pytest.approx(0.5114, abs=1e-9)


@pytest.mark.imdb
def test_hub_rows_map_back_to_file_names(imdb_reviews, monkeypatch: pytest.MonkeyPatch,
                                         ) -> None:  # type: ignore[no-untyped-def]
    """The hub has no file names and archive order; the packaged index restores both."""
    import datasets

    shuffled = list(imdb_reviews)
    np.random.RandomState(0).shuffle(shuffled)  # any order: the hub's is the archive's
    fake = datasets.Dataset.from_dict({"text": [r.raw.decode() for r in shuffled],
                                       "label": [r.label for r in shuffled]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    hub = data.read_hub()
    assert [(r.raw, r.label) for r in hub] == [(r.raw, r.label) for r in imdb_reviews]
    # Identical duplicate reviews may trade names; every name still holds its own text.
    by_path = {r.path: r.raw for r in imdb_reviews}
    assert sorted(r.path for r in hub) == sorted(by_path)
    assert all(by_path[r.path] == r.raw for r in hub)


def test_hub_row_that_is_not_imdb_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    fake = datasets.Dataset.from_dict({"text": ["not an imdb review"], "label": [1]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    with pytest.raises(data.DataSourceError, match="not one of the IMDb training files"):
        data.read_hub()


def test_every_pass_is_a_reordering_of_the_first(small_imdb: Path) -> None:
    """pass_order(k) puts pass 0's rows (load_imdb's order) in tf.data pass k's order, and
    split_order gives back the split order that text_dataset_from_directory shuffles."""
    from embeddings.tfrandom import DEFAULT_GRAPH_SEED, shuffle_order

    reviews = data.read_directory(small_imdb)
    train_idx, _ = data.split_indices(len(reviews), 0.25, 5)
    split = [reviews[i].path for i in train_idx]
    first = list(data.load_imdb(small_imdb, validation_split=0.25, seed=5, batch_size=2)[0]["path"])
    assert [first[i] for i in data.split_order(30, 2, 5)] == split
    for k in (0, 1, 3):
        expected = [split[i] for i in shuffle_order(30, 16, DEFAULT_GRAPH_SEED, 5, k)]
        assert [first[i] for i in data.pass_order(30, 2, 5, k)] == expected
    assert data.pass_order(30, 2, 5, 1).tolist() != list(range(30))


def test_reshuffled_epochs_read_every_other_pass() -> None:
    """Measured on Keras 3.15's fit: adapt reads pass 0, epoch e (from 0) pass 2e + 1."""
    assert [data.epoch_pass(e, reshuffle=True) for e in range(4)] == [1, 3, 5, 7]
    assert [data.epoch_pass(e, reshuffle=False) for e in range(4)] == [0, 0, 0, 0]
