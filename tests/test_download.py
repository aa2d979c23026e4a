"""Downloads and the download cache, against HTTP servers the tests start on 127.0.0.1
(never the internet): verified, content-addressed, re-hashed on every use, staged in
claimed folders that no failure, signal or kill leaves behind, and one-line errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from embeddings import data
from embeddings.data import download
from embeddings.errors import InvalidInput
from embeddings.files import claim
from embeddings.testing import (
    TINY_TRAIN_FLAGS,
    assert_refused,
    cli_error,
    make_tarball,
    train_cli,
    tree_state,
)


class Server:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 serving ``payload`` at every path.

    Args:
        payload (bytes): the body.
        status (int): the HTTP status; an error status sends no body. Default: ``200``.
        send (int | None): bytes actually sent, under a ``Content-Length`` of the whole
            payload. Default: all of them.
        stall (bool): accept the request and never answer (until closed). Default: ``False``.
        together (int): answer only once this many requests are in, so that concurrent
            downloads overlap. Default: ``1``.
    """

    def __init__(self, payload: bytes, *, status: int = 200, send: int | None = None,
                 stall: bool = False, together: int = 1) -> None:
        self.payload, self.hits = payload, 0
        self.released = threading.Event()
        barrier = threading.Barrier(together)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                if stall:
                    outer.released.wait(60)
                    return
                barrier.wait(timeout=60)
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:send])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/aclImdb_v1.tar.gz"
        self.sha256 = hashlib.sha256(payload).hexdigest()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(small_imdb: Path, tmp_path: Path) -> bytes:
    """The small tree as an ``aclImdb_v1.tar.gz``-style archive."""
    return make_tarball(small_imdb, tmp_path / "served.tar.gz")


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start servers (see :class:`Server`); all are closed after the test."""
    servers: list[Server] = []

    def start(payload: bytes, **behaviour: Any) -> Server:
        servers.append(Server(payload, **behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server(serve: Callable[..., Server], archive: bytes) -> Server:
    """A server of the good archive."""
    return serve(archive)


@pytest.fixture
def default_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ``EMBEDDINGS_DATA``, an empty cache in ``tmp_path/cache``, the hub offline."""
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("hub unreachable")

    monkeypatch.delenv("EMBEDDINGS_DATA", raising=False)
    monkeypatch.setenv("EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "load_dataset", offline)
    return tmp_path / "cache"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- the cache: verified, content-addressed, re-hashed ----------------------------------


def test_download_is_verified_kept_whole_and_reused(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reviews, where = data.read_url(server.url, cache)
    assert len(reviews) == 40 and where == f"{server.url} (sha256 {server.sha256})"
    imdb = cache / "imdb"
    assert listing(imdb) == [f"{server.sha256}.json", f"{server.sha256}.tar.gz"]
    assert (imdb / f"{server.sha256}.tar.gz").read_bytes() == server.payload  # not extracted
    record = json.loads((imdb / f"{server.sha256}.json").read_text())
    assert record["source"] == server.url and record["sha256"] == server.sha256
    assert record["size"] == len(server.payload) and record["downloaded"]

    again, where = data.read_url(server.url, cache)
    assert again == reviews and server.hits == 1  # not downloaded again (nor trusted:
    # test_corrupted_entry_is_refused_not_used shows that each use re-hashes the archive)
    entry = imdb / f"{server.sha256}.tar.gz"
    assert where == f"{server.url} (sha256 {server.sha256}, cached as {entry})"


def test_pinned_checksum_selects_the_entry_whatever_its_url(server: Server, tmp_path: Path,
                                                            ) -> None:
    cache = tmp_path / "cache"
    reviews, where = data.read_url(f"{server.url}#sha256={server.sha256.upper()}", cache)
    assert len(reviews) == 40 and where == f"{server.url} (sha256 {server.sha256})"
    mirror = f"http://127.0.0.1:9/elsewhere.tar.gz#sha256={server.sha256}"  # nothing listens
    assert data.read_url(mirror, cache)[0] == reviews and server.hits == 1


def test_pinned_bad_checksum_keeps_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(data.DataSourceError, match="has sha256 .*not the expected 000000000000"):
        data.read_url(f"{server.url}#sha256={'0' * 64}", tmp_path / "cache")
    assert listing(tmp_path / "cache" / "imdb") == []


@pytest.mark.parametrize("fragment", ["#md5=abc", "#sha256=1234", "#part2"])
def test_a_fragment_that_is_not_a_sha256_pin_is_refused(tmp_path: Path, fragment: str) -> None:
    with pytest.raises(data.DataSourceError, match="#sha256=<64 hex digits>"):
        data.read_url("http://127.0.0.1:9/x.tar.gz" + fragment, tmp_path / "cache")


@pytest.fixture
def corrupted_entry(server: Server, tmp_path: Path) -> Path:
    """The server's archive downloaded into ``tmp_path/cache``, then one bit flipped."""
    data.read_url(server.url, tmp_path / "cache")
    entry = tmp_path / "cache" / "imdb" / f"{server.sha256}.tar.gz"
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    entry.write_bytes(bytes(blob))
    return entry


def test_corrupted_entry_is_refused_not_used(server: Server, corrupted_entry: Path,
                                             tmp_path: Path) -> None:
    cache, entry = tmp_path / "cache", corrupted_entry
    for url in (server.url, f"{server.url}#sha256={server.sha256}"):
        with pytest.raises(data.DataSourceError, match=f"{entry} is corrupt.*delete it"):
            data.read_url(url, cache)
    entry.unlink()
    assert len(data.read_url(server.url, cache)[0]) == 40 and server.hits == 2


def test_default_source_replaces_a_corrupted_entry(server: Server, default_sources: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "IMDB_URL", server.url)
    monkeypatch.setattr(download, "IMDB_SHA256", server.sha256)
    assert data.read_source()[1] == f"{server.url} (sha256 {server.sha256})"
    entry = default_sources / "imdb" / f"{server.sha256}.tar.gz"
    entry.write_bytes(entry.read_bytes()[:-1] + b"!")
    reviews, where = data.read_source()  # cache refused, hub offline, downloaded again
    assert len(reviews) == 40 and where == f"{server.url} (sha256 {server.sha256})"
    assert server.hits == 2 and entry.read_bytes() == server.payload


def test_old_extracted_cache_is_ignored(server: Server, default_sources: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from embeddings.testing import write_imdb_tree

    write_imdb_tree(default_sources, {"neg/0_1.txt": "planted", "pos/0_9.txt": "planted"})
    monkeypatch.setattr(download, "IMDB_URL", server.url)
    monkeypatch.setattr(download, "IMDB_SHA256", server.sha256)
    with caplog.at_level(logging.WARNING, logger="embeddings.data.download"):
        for _ in range(2):
            reviews, where = data.read_source()
            assert len(reviews) == 40 and server.url in where
    assert server.hits == 1
    assert [r.message for r in caplog.records].count(
        f"Ignoring {default_sources / 'aclImdb'}: extracted downloads carry no checksum and are "
        "no longer used; delete it to free the space.") == 1


def test_default_source_never_takes_an_entry_from_another_url(
        server: Server, default_sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the entry with the published sha256 stands for the Stanford archive, even one
    downloaded from the very URL the Stanford URL now names."""
    assert len(data.read_url(server.url)[0]) == 40  # an entry, not the official archive
    monkeypatch.setattr(download, "IMDB_URL", server.url)
    with pytest.raises(data.DataSourceError, match="not the expected c40f74a18d3b"):
        data.read_url(server.url)
    with pytest.raises(data.DataSourceError) as err:
        data.read_source()
    assert "cache: not downloaded yet" in str(err.value)
    assert "download: The download from it has sha256" in str(err.value)
    assert listing(default_sources / "imdb") == [f"{server.sha256}.json",
                                                 f"{server.sha256}.tar.gz"]


def test_all_fallbacks_failing_is_one_line_listing_each(default_sources: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "IMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    with pytest.raises(data.DataSourceError) as err:
        data.read_source()
    assert str(err.value) == (
        "No IMDb source worked (cache: not downloaded yet; hub: Cannot load the hub dataset "
        "stanfordnlp/imdb: hub unreachable; download: Cannot download it: Connection refused). "
        "Use --data (or EMBEDDINGS_DATA) with an aclImdb folder or aclImdb_v1.tar.gz.")


def test_cli_with_no_source_working_says_so_in_one_line(tmp_path: Path) -> None:
    """``python -m embeddings.train`` with no ``--data``, an empty cache, the hub offline
    and the Stanford URL pointed at a closed port on 127.0.0.1 (by a launcher module that
    patches the one constant, so no test ever reaches the internet)."""
    (tmp_path / "offline_train.py").write_text(
        "import sys\n"
        "from embeddings.data import download\n"
        "download.IMDB_URL = 'http://127.0.0.1:9/aclImdb_v1.tar.gz'\n"
        "from embeddings import train\n"
        "sys.exit(train.main())\n")
    before = tree_state(tmp_path)
    err = cli_error(["offline_train", *TINY_TRAIN_FLAGS, "--out", str(tmp_path / "run")],
                    env={"PYTHONPATH": str(tmp_path), "EMBEDDINGS_DATA": "",
                         "EMBEDDINGS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
                         "HF_HOME": str(tmp_path / "hf")})
    assert err.startswith("error: No IMDb source worked (cache: not downloaded yet; hub: ")
    assert "download: Cannot download it: Connection refused). Use --data" in err
    new = {k: v for k, v in tree_state(tmp_path).items() if k not in before}
    assert set(new.values()) <= {"dir"}, new  # at most the empty cache folders


# -- network failures: one line, nothing kept -------------------------------------------


def test_http_error_is_one_line(serve: Callable[..., Server], archive: bytes,
                                tmp_path: Path) -> None:
    server = serve(archive, status=404)
    with pytest.raises(data.DataSourceError) as err:
        data.read_url(server.url, tmp_path / "cache")
    assert str(err.value) == (f"Cannot download {server.url}: HTTP 404 Not Found. Check the "
                              "URL and the network, or use --data PATH.")
    assert listing(tmp_path / "cache" / "imdb") == []


def test_refused_connection_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(data.DataSourceError, match="127.0.0.1:9/x.tar.gz: Connection refused"):
        data.read_url("http://127.0.0.1:9/x.tar.gz", tmp_path / "cache")


def test_truncated_body_is_an_error(serve: Callable[..., Server], archive: bytes,
                                    tmp_path: Path) -> None:
    server = serve(archive, send=len(archive) // 2)
    with pytest.raises(data.DataSourceError,
                       match=f"stopped after {len(archive) // 2:,} of {len(archive):,} bytes"):
        data.read_url(server.url, tmp_path / "cache")
    assert listing(tmp_path / "cache" / "imdb") == []


def test_stalled_server_times_out(serve: Callable[..., Server], archive: bytes, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(archive, stall=True)
    monkeypatch.setenv("EMBEDDINGS_DOWNLOAD_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(data.DataSourceError,
                       match=r"no answer for 1 s \(EMBEDDINGS_DOWNLOAD_TIMEOUT\)"):
        data.read_url(server.url, tmp_path / "cache")
    assert time.monotonic() - start < 10 and server.hits == 1
    assert listing(tmp_path / "cache" / "imdb") == []


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan"])
def test_download_timeout_must_be_positive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("EMBEDDINGS_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(InvalidInput, match="EMBEDDINGS_DOWNLOAD_TIMEOUT must be a positive"):
        data.download_timeout()


def test_download_that_is_not_a_tarball_keeps_nothing(serve: Callable[..., Server],
                                                      tmp_path: Path) -> None:
    server = serve(b"<html>a login page</html>")
    with pytest.raises(data.DataSourceError, match=f"^{server.url} is not a tar archive"):
        data.read_url(server.url, tmp_path / "cache")
    assert listing(tmp_path / "cache" / "imdb") == []


# -- staging: claimed, swept, never left behind -----------------------------------------


def _python(code: str, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "EMBEDDINGS_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_downloads_share_one_entry(serve: Callable[..., Server], archive: bytes,
                                              tmp_path: Path) -> None:
    """Two processes download the same URL into one cache at once (the server answers
    only when both asked): both succeed and one entry remains, with no staging."""
    server = serve(archive, together=2)
    code = f"from embeddings import data; print(len(data.read_url({server.url!r})[0]))"
    children = [_python(code, tmp_path / "cache") for _ in range(2)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "40", err[-3000:]
    assert server.hits == 2
    assert listing(tmp_path / "cache" / "imdb") == [f"{server.sha256}.json",
                                                    f"{server.sha256}.tar.gz"]


def test_staging_of_a_killed_download_is_swept(server: Server, tmp_path: Path) -> None:
    imdb = tmp_path / "cache" / "imdb"
    code = ("import time; from embeddings import data, files; "
            "c = files.claim(data.imdb_cache() , '.download-'); print(c.path, flush=True); "
            "time.sleep(600)")
    child = _python(code, tmp_path / "cache")
    try:
        stale = Path(child.stdout.readline().strip()) if child.stdout else Path()
        (stale / "archive").write_bytes(b"half a download")
        live = claim(imdb, ".download-")  # another download in progress: not touched
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert stale.is_dir()
    data.read_url(server.url, tmp_path / "cache")
    assert not stale.exists() and live.path.is_dir()
    live.release()
    assert listing(imdb) == [f"{server.sha256}.json", f"{server.sha256}.tar.gz"]


def test_sigterm_during_a_download_removes_its_staging(serve: Callable[..., Server],
                                                       archive: bytes, tmp_path: Path) -> None:
    server = serve(archive, stall=True)
    (tmp_path / "runs").mkdir()
    env = {**os.environ, "EMBEDDINGS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "embeddings.train", "--data", server.url, *TINY_TRAIN_FLAGS,
         "--out", str(tmp_path / "runs" / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while server.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listing(tmp_path / "cache" / "imdb")[0].startswith(".download-")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert err.startswith("interrupted by SIGTERM")
    assert listing(tmp_path / "cache" / "imdb") == [] and listing(tmp_path / "runs") == []


# -- the command line ---------------------------------------------------------------------


def test_config_names_the_url_and_sha256_really_used(server: Server, tmp_path: Path) -> None:
    proc = train_cli(server.url, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert config["run"]["data_source"] == f"{server.url} (sha256 {server.sha256})"


@pytest.mark.parametrize("case", ["http-404", "bad-pin", "truncated", "stalled", "refused",
                                  "not-a-tarball", "bad-fragment", "bad-timeout"])
def test_cli_refuses_a_bad_download_in_one_line(serve: Callable[..., Server], archive: bytes,
                                                tmp_path: Path, case: str) -> None:
    behaviour: dict[str, Any] = {"http-404": {"status": 404}, "truncated": {"send": 1000},
                                 "stalled": {"stall": True}}.get(case, {})
    server = serve(b"<html>Moved</html>" if case == "not-a-tarball" else archive, **behaviour)
    url = {"bad-pin": server.url + "#sha256=" + "0" * 64, "bad-fragment": server.url + "#md5=1",
           "refused": "http://127.0.0.1:9/aclImdb_v1.tar.gz"}.get(case, server.url)
    named = {"refused": url, "bad-timeout": "EMBEDDINGS_DOWNLOAD_TIMEOUT"}.get(case, server.url)
    timeout = "soon" if case == "bad-timeout" else "1"
    assert_refused(url, named, tmp_path, env={"EMBEDDINGS_DOWNLOAD_TIMEOUT": timeout},
                   timeout=120)


def test_cli_refuses_a_corrupted_cache_entry_and_keeps_it(server: Server, corrupted_entry: Path,
                                                          tmp_path: Path) -> None:
    """The entry is the user's: refused and named, never used, never silently deleted."""
    cache, entry = tmp_path / "cache", corrupted_entry
    before = tree_state(tmp_path)
    err = cli_error(["embeddings.train", "--data", server.url, *TINY_TRAIN_FLAGS,
                     "--out", str(tmp_path / "run")],
                    env={"EMBEDDINGS_CACHE": str(cache), "EMBEDDINGS_DATA": ""})
    assert f"{entry} is corrupt" in err and "delete it" in err
    assert tree_state(tmp_path) == before
