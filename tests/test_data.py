"""IMDb sources (folders, tarballs, the hub), the Keras split and order, and bad input,
in the library and through ``python -m embeddings.train``.  Downloads: test_download.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embeddings import data
from embeddings.data import tarball
from embeddings.testing import assert_refused, make_tarball, train_cli, write_imdb_tree


def add_member(tar: tarfile.TarFile, name: str, content: bytes = b"",
               kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    """Add one member of any type to an archive being written."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(content) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(content) if info.size else None)


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


# -- tarballs: read in place, whole or not at all ------------------------------------------


def _cut_archive(small_imdb: Path, tmp_path: Path, where: str) -> Path:
    """The small tree as a tarball cut short ``where``: at a member's header (tarfile alone
    would then load the members before it), inside a member's data, or in a gzip stream."""
    whole = make_tarball(small_imdb, tmp_path / "whole.tar", gzip=False)
    with tarfile.open(tmp_path / "whole.tar") as tar:
        review = [m for m in tar.getmembers() if m.name.endswith(".txt")][25]
    cuts = {"tar-at-a-header": whole[:review.offset],
            "tar-inside-a-member": whole[:review.offset_data + review.size // 2],
            "gzip-stream": make_tarball(small_imdb, tmp_path / "w.tar.gz")[:-300],
            "gzip-of-tar-at-a-header": gzip.compress(whole[:review.offset], mtime=0)}
    path = tmp_path / f"cut-{where}.tar"
    path.write_bytes(cuts[where])
    return path


@pytest.mark.parametrize("where", ["tar-at-a-header", "tar-inside-a-member", "gzip-stream",
                                   "gzip-of-tar-at-a-header"])
def test_truncated_tarball_is_an_error_never_a_partial_load(small_imdb: Path, tmp_path: Path,
                                                             where: str) -> None:
    path = _cut_archive(small_imdb, tmp_path, where)
    with pytest.raises(data.DataSourceError, match="truncated or corrupt") as err:
        data.read_tarball(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def _deep_tree(tmp_path: Path) -> Path:
    """Reviews whose names need every tar header kind: a long name (GNU long-name member,
    pax ``path`` record or ustar prefix), non-ASCII, a space, and a folder under a class."""
    deep = "/".join(["a-folder-with-a-long-name-" + str(i) for i in range(5)])
    return write_imdb_tree(tmp_path, {"neg/0_1.txt": "short", f"neg/{deep}/1_2.txt": "deep",
                                      "neg/caf\u00e9 2_3.txt": b"bytes \xff", "pos/0_9.txt": "",
                                      f"pos/{deep[:60]}/x.txt": "x" * 3000})


@pytest.mark.parametrize("form", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_every_tar_format_and_compression_reads_as_the_folder(tmp_path: Path, form: int,
                                                              compression: str) -> None:
    """The reader parses tar headers itself: each format tarfile writes, each compression,
    against the folder read file by file."""
    base = _deep_tree(tmp_path)
    path = tmp_path / f"deep.tar.{compression}"
    with tarfile.open(path, f"w:{compression}", format=form) as tar:
        tar.add(base, arcname="aclImdb")
    got = data.read_tarball(path)
    assert got == data.read_directory(base) and len(got) == 5


def test_concatenated_gzip_streams_read_as_one_archive(small_imdb: Path, tmp_path: Path) -> None:
    """``cat a.gz b.gz`` is one gzip file to gunzip, with zero padding between streams."""
    whole = make_tarball(small_imdb, tmp_path / "whole.tar", gzip=False)
    path = tmp_path / "two-streams.tar.gz"
    path.write_bytes(gzip.compress(whole[:10240], mtime=0) + bytes(8)
                     + gzip.compress(whole[10240:], mtime=0))
    assert data.read_tarball(path) == data.read_directory(small_imdb)


@pytest.mark.parametrize("field,where", [(slice(148, 149), "checksum"), (slice(0, 1), "name"),
                                         (slice(124, 125), "size")])
def test_damaged_header_is_corrupt_never_a_partial_load(small_imdb: Path, tmp_path: Path,
                                                         field: slice, where: str) -> None:
    """A header whose checksum no longer matches, after a byte of ``where`` changed, ends
    the read with an error (``tarfile`` would stop there and return the members before)."""
    whole = bytearray(make_tarball(small_imdb, tmp_path / "whole.tar", gzip=False))
    with tarfile.open(tmp_path / "whole.tar") as tar:
        review = [m for m in tar.getmembers() if m.name.endswith(".txt")][25]
    at = review.offset + field.start
    whole[at] = (whole[at] + 1) % 256 or 1
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(whole))
    with pytest.raises(data.DataSourceError, match="truncated or corrupt .*checksum"):
        data.read_tarball(path)


@pytest.mark.parametrize("compression", ["gz", ""])
def test_the_archive_is_never_held_inflated(small_imdb: Path, tmp_path: Path,
                                            compression: str) -> None:
    """The Stanford tarball inflates to 0.5 GB, mostly members that are not read
    (``unsup/``, ``test/``): the reader inflates it piece by piece and skips their data.
    Here 64 MiB of zeros in ``unsup/`` (64 KiB gzipped) must not be held at once, beyond
    the archive's own bytes."""
    import tracemalloc

    path = tmp_path / f"big.tar.{compression}"
    with tarfile.open(path, f"w:{compression}") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "aclImdb/train/unsup/0_0.txt", bytes(64 << 20))
    tracemalloc.start()
    try:
        reviews = data.read_tarball(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reviews == data.read_directory(small_imdb)
    held = peak - path.stat().st_size
    assert held < 16 << 20, f"{held / 2**20:.1f} MiB held at once beyond the archive"


def test_damaged_first_header_is_not_a_tar_archive(small_imdb: Path, tmp_path: Path) -> None:
    whole = bytearray(make_tarball(small_imdb, tmp_path / "whole.tar", gzip=False))
    whole[0] ^= 0x40
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(whole))
    with pytest.raises(data.DataSourceError, match="is not a tar archive"):
        data.read_tarball(path)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/neg/0_1.txt",
                                  "aclImdb/train/neg/../../../up.txt"])
def test_unsafe_member_name_refuses_the_archive(small_imdb: Path, tmp_path: Path,
                                                name: str) -> None:
    path = tmp_path / "unsafe.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, name, b"gotcha")
    with pytest.raises(data.DataSourceError, match="unsafe member") as err:
        data.read_tarball(path)
    assert repr(name) in str(err.value)


@pytest.mark.parametrize("kind,link", [(tarfile.SYMTYPE, "../pos/0_1.txt"),
                                       (tarfile.LNKTYPE, "aclImdb/train/pos/0_1.txt"),
                                       (tarfile.CHRTYPE, ""), (tarfile.FIFOTYPE, "")],
                         ids=["symlink", "hardlink", "device", "fifo"])
def test_review_that_is_a_link_or_device_is_refused(small_imdb: Path, tmp_path: Path,
                                                    kind: bytes, link: str) -> None:
    """An extracted copy would give Keras another file's bytes (or a device) under this
    name, and skipping it would drop a review: the archive is refused, naming the member."""
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "aclImdb/train/neg/99_1.txt", kind=kind, link=link)
    with pytest.raises(data.DataSourceError, match="99_1.txt is a link or device"):
        data.read_tarball(path)


def test_members_outside_the_class_folders_are_never_read(small_imdb: Path,
                                                          tmp_path: Path) -> None:
    """Links and devices elsewhere are skipped, as are files that are not reviews."""
    path = tmp_path / "extra.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "aclImdb/README.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add_member(tar, "aclImdb/train/unsup/1_0.txt", kind=tarfile.LNKTYPE, link="/etc/passwd")
        add_member(tar, "aclImdb/dev.txt", kind=tarfile.CHRTYPE)
    assert data.read_tarball(path) == data.read_directory(small_imdb)


def test_oversized_review_is_refused_before_it_is_read(small_imdb: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make_tarball(small_imdb, tmp_path / "imdb.tar.gz")
    # The corpus has longer reviews.  Folders and tarballs both read the limit there.
    monkeypatch.setattr("embeddings.data.reviews.MAX_REVIEW_BYTES", 12)
    with pytest.raises(data.DataSourceError, match="over the 12 a review may have"):
        data.read_tarball(tmp_path / "imdb.tar.gz")
    with pytest.raises(data.DataSourceError, match="over the 12 a review may have"):
        data.read_directory(small_imdb)


def test_not_a_tarball_is_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(data.DataSourceError) as err:
        data.read_source(path)
    assert str(err.value) == (f"{path} is not a tar archive. Use --data (or EMBEDDINGS_DATA) "
                              "with an aclImdb folder or aclImdb_v1.tar.gz.")


def test_tarball_source_is_described_with_its_sha256(small_imdb: Path, tmp_path: Path) -> None:
    blob = make_tarball(small_imdb, tmp_path / "imdb.tar.gz")
    reviews, where = data.read_source(tmp_path / "imdb.tar.gz")
    assert len(reviews) == 40
    assert where == f"{tmp_path / 'imdb.tar.gz'} (sha256 {hashlib.sha256(blob).hexdigest()})"


# -- folders: regular files only, every byte kept -----------------------------------------


def test_fifo_named_like_a_review_is_refused_not_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: it must be refused from its type."""
    base = write_imdb_tree(tmp_path, {"neg/0_1.txt": "x", "pos/0_9.txt": "y"})
    os.mkfifo(base / "train" / "neg" / "1_2.txt")
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            data.read_directory(base)
            outcome.append(None)
        except data.DataSourceError as err:
            outcome.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert outcome, "reading the folder hung on the FIFO"
    assert str(outcome[0]).startswith(f"{base / 'train' / 'neg' / '1_2.txt'} is a FIFO")


UNUSUAL = {"neg/0_1.txt": b"", "neg/1_2.txt": b"long " * 2_000_000,
           "pos/0_9.txt": b"caf\xe9 \xff\xfe", "pos/1_8.txt": b"fine"}


@pytest.mark.parametrize("form", ["folder", "tarball"])
def test_unusual_reviews_keep_their_exact_bytes(tmp_path: Path, form: str) -> None:
    """An empty file, a 10 MB review and invalid UTF-8 come back byte for byte, as
    TensorFlow's ``tf.io.read_file`` reads them."""
    base = write_imdb_tree(tmp_path, UNUSUAL)
    if form == "tarball":
        make_tarball(base, tmp_path / "imdb.tar.gz")
        reviews = data.read_tarball(tmp_path / "imdb.tar.gz")
    else:
        reviews = data.read_directory(base)
    assert {r.path: r.raw for r in reviews} == UNUSUAL
    train, val = data.load_imdb(base, validation_split=0.5)
    rows = {row["path"]: row for ds in (train, val) for row in ds}
    assert rows["neg/0_1.txt"]["text"] == "" and rows["neg/0_1.txt"]["raw"] is None
    assert rows["neg/1_2.txt"]["text"].encode() == UNUSUAL["neg/1_2.txt"]
    assert rows["pos/0_9.txt"]["raw"] == UNUSUAL["pos/0_9.txt"]
    exact = data.exact_texts(train) + data.exact_texts(val)
    assert sorted(t if isinstance(t, bytes) else t.encode() for t in exact) == sorted(
        UNUSUAL.values())


# -- the command line ---------------------------------------------------------------------


def _missing(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    return tmp_path / "no-such-data", "no-such-data"


def _no_pos_folder(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    base = write_imdb_tree(tmp_path / "data", {"neg/0_1.txt": "x"})
    return base, str(base)


def _empty_class_folder(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    base = write_imdb_tree(tmp_path / "data", {"pos/0_9.txt": "y"}) / "train"
    (base / "neg").mkdir()
    return base, str(base)


def _not_a_tarball(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = tmp_path / "page.tar.gz"
    path.write_bytes(b"<html>Not Found</html>\n")
    return path, str(path)


def _truncated_gzip(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = _cut_archive(small_imdb, tmp_path, "gzip-stream")
    return path, str(path)


def _truncated_tar(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = _cut_archive(small_imdb, tmp_path, "tar-at-a-header")
    return path, str(path)


def _climbing_member(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "../../outside.txt", b"gotcha")
    return path, "'../../outside.txt'"


def _fifo_in_folder(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    fifo = small_imdb / "train" / "pos" / "99_9.txt"
    os.mkfifo(fifo)
    return small_imdb, str(fifo)


def _linked_review(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "aclImdb/train/neg/99_1.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
    return path, "aclImdb/train/neg/99_1.txt is a link or device"


def _device_review(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    path = tmp_path / "device.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(small_imdb, arcname="aclImdb")
        add_member(tar, "aclImdb/train/pos/99_9.txt", kind=tarfile.CHRTYPE)
    return path, "aclImdb/train/pos/99_9.txt is a link or device"


def _oversized_review(tmp_path: Path, small_imdb: Path) -> tuple[Path, str]:
    huge = small_imdb / "train" / "neg" / "99_1.txt"
    with huge.open("wb") as f:  # sparse: 257 MiB declared, nothing written
        f.truncate(data.MAX_REVIEW_BYTES + 2**20)
    return small_imdb, str(huge)


@pytest.mark.parametrize("make", [_missing, _no_pos_folder, _empty_class_folder, _not_a_tarball,
                                  _truncated_gzip, _truncated_tar, _climbing_member,
                                  _fifo_in_folder, _linked_review, _device_review,
                                  _oversized_review], ids=lambda f: f.__name__.strip("_"))
def test_cli_refuses_bad_data_in_one_line(
        tmp_path: Path, small_imdb: Path,
        make: Callable[[Path, Path], tuple[Path, str]]) -> None:
    source, named = make(tmp_path, small_imdb)
    assert_refused(str(source), named, tmp_path, timeout=120)


def test_cli_trains_on_empty_huge_and_non_utf8_reviews(tmp_path: Path, small_imdb: Path) -> None:
    base = write_imdb_tree(tmp_path, UNUSUAL)  # beside the small corpus's files
    proc = train_cli(str(base), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "run" / "config.json").is_file()
    assert {r.path: r.raw for r in data.read_directory(base) if r.path in UNUSUAL} == UNUSUAL


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


# -- the test split (aclImdb/test) -----------------------------------------------------------

TEST_FILES = {"neg/0_2.txt": b"awful <br />test", "neg/1_1.txt": b"dull test",
              "pos/0_9.txt": b"great test", "pos/2_8.txt": b"\xff fine test"}


def add_test_split(base: Path, files: dict[str, bytes] = TEST_FILES) -> Path:
    """Write ``files`` under ``base/test`` (``base`` is the ``aclImdb`` folder)."""
    for rel, content in files.items():
        path = base / "test" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return base


def test_test_subset_reads_only_test_folders(small_imdb: Path) -> None:
    train_before = data.read_directory(small_imdb)
    add_test_split(small_imdb)
    for root in (small_imdb.parent, small_imdb, small_imdb / "test"):
        test = data.read_directory(root, subset="test")
        assert [(r.path, r.raw, r.label) for r in test] == [
            ("neg/0_2.txt", b"awful <br />test", 0), ("neg/1_1.txt", b"dull test", 0),
            ("pos/0_9.txt", b"great test", 1), ("pos/2_8.txt", b"\xff fine test", 1)]
    assert data.read_directory(small_imdb) == train_before  # training reads as before


def test_training_folder_is_never_read_as_the_test_split(small_imdb: Path) -> None:
    add_test_split(small_imdb)
    with pytest.raises(data.DataSourceError, match="No test split in .*train"):
        data.read_directory(small_imdb / "train", subset="test")


def test_tarball_test_subset_matches_the_folder(small_imdb: Path, tmp_path: Path) -> None:
    train_only = tmp_path / "train.tar.gz"
    make_tarball(small_imdb, train_only)
    add_test_split(small_imdb)
    both = tmp_path / "both.tar.gz"
    make_tarball(small_imdb, both)
    assert data.read_tarball(both, subset="test") == data.read_directory(small_imdb, "test")
    assert data.read_tarball(both) == data.read_tarball(train_only) == data.read_directory(
        small_imdb)
    reviews, where = data.read_source(both, subset="test")
    assert len(reviews) == 4 and where.startswith(f"{both} (sha256 ")


@pytest.mark.parametrize("kind", ["folder", "tarball"])
def test_source_without_a_test_split_is_a_clear_error(small_imdb: Path, tmp_path: Path,
                                                     kind: str) -> None:
    source = small_imdb if kind == "folder" else tmp_path / "train.tar.gz"
    if kind == "tarball":
        make_tarball(small_imdb, source)
    with pytest.raises(data.DataSourceError, match="No test split in .*'hub'"):
        data.read_source(source, subset="test")
    with pytest.raises(data.DataSourceError, match="No test split"):
        data.load_test(source)


def test_unknown_subset_is_rejected(small_imdb: Path) -> None:
    with pytest.raises(ValueError, match=r"subset must be one of \('train', 'test'\)"):
        data.read_source(small_imdb, subset="unsup")


def test_hub_test_split_is_named_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test rows are not in the packaged index: each is named after its row."""
    import datasets

    asked = []
    fake = datasets.Dataset.from_dict({"text": ["bad one", "good one", "bad two"] + ["x"] * 8,
                                       "label": [0, 1, 0] + [1] * 8})

    def load_dataset(name: str, split: str) -> datasets.Dataset:
        asked.append((name, split))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    reviews, where = data.read_source("hub", subset="test")
    assert asked == [("stanfordnlp/imdb", "test")] and where == "hub:stanfordnlp/imdb"
    assert [(r.path, r.raw, r.label) for r in reviews[:4]] == [
        ("neg/hub-00.txt", b"bad one", 0), ("neg/hub-02.txt", b"bad two", 0),
        ("pos/hub-01.txt", b"good one", 1), ("pos/hub-03.txt", b"x", 1)]
    assert len(reviews) == 11


def test_load_test_has_the_columns_of_the_splits(small_imdb: Path) -> None:
    add_test_split(small_imdb)
    test, where = data.load_test(small_imdb)
    assert where == str(small_imdb)
    assert test.column_names == data.load_splits(small_imdb).val.column_names
    assert test["label"] == [0, 0, 1, 1]
    assert data.exact_texts(test)[3] == b"\xff fine test"  # not UTF-8: its bytes


# -- an archive's reviews, kept between runs -----------------------------------------------


@pytest.fixture
def keeping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache, and archives of any size kept (the small tree has 40 reviews)."""
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tarball, "PARSED_MIN_REVIEWS", 1)
    return tmp_path / "cache"


def _kept(archive: Path, subset: str = "train") -> Path:
    return tarball.parsed_path(hashlib.sha256(archive.read_bytes()).hexdigest(), subset)


def test_an_archives_reviews_are_kept_and_read_back(small_imdb: Path, tmp_path: Path,
                                                    keeping: Path) -> None:
    """The first read keeps the reviews (exact bytes, invalid UTF-8 too) under the
    archive's sha256; a later read returns what was kept, not the archive's members."""
    (small_imdb / "train" / "neg" / "99_1.txt").write_bytes(b"caf\xe9 \xff bad")
    archive = tmp_path / "imdb.tar.gz"
    make_tarball(small_imdb, archive)
    expected = data.read_directory(small_imdb)
    assert not _kept(archive).exists()
    assert data.read_tarball(archive) == expected
    assert _kept(archive).is_file() and _kept(archive).parent.parent.parent == keeping
    assert data.read_tarball(archive) == expected  # read back
    test_only = expected[:3]  # what is kept is what a later read returns
    tarball._write_parsed(_kept(archive), test_only)
    assert data.read_tarball(archive) == test_only
    assert data.read_source(archive)[0] == test_only
    assert not _kept(archive, "test").exists()  # each subset has its own


def test_a_damaged_kept_copy_is_read_around_and_written_again(
        small_imdb: Path, tmp_path: Path, keeping: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "imdb.tar.gz"
    make_tarball(small_imdb, archive)
    expected = data.read_tarball(archive)
    whole = _kept(archive).read_bytes()
    _kept(archive).write_bytes(whole[:len(whole) // 2])
    assert data.read_tarball(archive) == expected
    assert "its parsed copy" in caplog.text and "is unreadable" in caplog.text
    assert _kept(archive).read_bytes() == whole  # written afresh


def test_small_archives_and_an_unwritable_cache_keep_nothing(
        small_imdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    archive = tmp_path / "imdb.tar.gz"
    make_tarball(small_imdb, archive)
    expected = data.read_directory(small_imdb)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    assert data.read_tarball(archive) == expected  # 40 reviews: under PARSED_MIN_REVIEWS
    assert not (tmp_path / "cache").exists()
    monkeypatch.setattr(tarball, "PARSED_MIN_REVIEWS", 1)
    (tmp_path / "a-file").write_bytes(b"")
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "a-file"))  # no folder can go there
    assert data.read_tarball(archive) == expected
    assert "Could not keep the parsed reviews" in caplog.text


def test_the_real_archives_kept_reviews_are_its_reviews(keeping: Path) -> None:
    """The 25,000 training reviews, read from the archive and then from their kept copy:
    the same reviews, in the same order, byte for byte."""
    source = os.environ.get("EMBEDDINGS_DATA") or ""
    if not Path(source).is_file():
        pytest.fail("EMBEDDINGS_DATA must name the IMDb archive (../shared/data/"
                    f"aclImdb-train.tar.gz). Received: EMBEDDINGS_DATA={source!r}")
    parsed, where = data.read_source(source)
    assert _kept(Path(source)).is_file()
    kept, kept_where = data.read_source(source)
    assert len(parsed) == 25_000 and kept == parsed and kept_where == where
