"""The hub source (:func:`embeddings.data.read_hub`) against a fake Hugging Face Hub that
the tests start on 127.0.0.1, never the internet.

``read_hub`` calls ``datasets.load_dataset(name, split="train")``; :class:`FakeHub` answers
just the HTTP calls that call makes for a repository of one parquet file, found by logging
every request and answering 404 until the load worked (``datasets`` 5.2.0 over
``huggingface_hub`` 2.4.0 and ``httpx2``), in the order they come:

* ``HEAD``/``GET /datasets/<repo>/resolve/<revision>/<file>``: the dataset card, the probes
  for a loading script, ``.huggingface.yaml`` and ``dataset_infos.json``, then the parquet
  file.  A file answers 200 with ``X-Repo-Commit`` (the commit ``main`` resolves to),
  ``ETag`` (its git blob id) and ``Content-Length``; a missing one 404 with
  ``X-Error-Code: EntryNotFound``, which is how the hub tells "no such file" from "no such
  repository" (``RepoNotFound``).  No Range requests come (nothing is resumed) and no
  ``X-Linked-*``/Xet headers are sent, so the files are plain git blobs, not LFS or Xet.
* ``GET /api/datasets/<repo>/revision/<revision>`` (and ``/api/datasets/<repo>``): the
  repository's info (``id``, ``sha``, ``siblings``).
* ``GET /api/datasets/<repo>/tree/<revision>[/<folder>]``: the JSON listing that
  ``HfFileSystem`` globs the ``data/train-*`` files with (``?recursive=`` honoured; one page,
  no ``Link`` header).
* ``POST /api/datasets/<repo>/paths-info/<revision>`` (form field ``paths``): the same
  entries for the paths asked.  These versions do not call it; ``HfFileSystem.info`` does.

Any other request is recorded in :attr:`FakeHub.unknown` and answered with a bare 404: the
cases assert there is none, so a ``datasets`` that needs another endpoint (say the parquet
export's ``/api/datasets/<repo>/parquet``) fails here by naming it rather than by a vague
load error.

``datasets`` and ``huggingface_hub`` read ``HF_ENDPOINT``, their cache folders and the
telemetry switch when they are imported, so each load runs in a fresh interpreter with
those set (caches under ``tmp_path``, proxies and tokens dropped).  The parquet's rows are
the corpus's reviews in a shuffled order, as the real hub's follow the archive's, with the
``neg``/``pos`` ClassLabel in the ``huggingface`` schema metadata as ``datasets`` writes it.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embeddings import data
from embeddings.testing import TINY_TRAIN_FLAGS, cli_error

REPO = "testorg/imdb-mini"
COMMIT = "3f1c0de5a2b94e6d8c7f0a1b2c3d4e5f6a7b8c9d"  # what main resolves to
PARQUET = "data/train-00000-of-00001.parquet"
CARD = b"---\nlicense: other\npretty_name: IMDb mini\n---\n# IMDb mini (a test fixture)\n"
FEATURES = {"text": {"dtype": "string", "_type": "Value"},
            "label": {"names": ["neg", "pos"], "_type": "ClassLabel"}}
# The read in a fresh interpreter: rows as JSON on stdout, or the DataSourceError on stderr
# with exit 2; any other exception is a traceback and exit 1.  huggingface_hub retries a
# 5xx answer or a refused connection 5 times, 23 s of waits in all; they are skipped here
# (the retries still happen: the server sees them), through the module the waits are in.
READ_HUB = """
import json, sys, time
from embeddings import data

class NoWaits:
    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, seconds):
        pass

try:
    import huggingface_hub.utils._http as backoff
    backoff.time = NoWaits()
except ImportError:  # another layout: the waits are waited
    pass
try:
    reviews = data.read_hub(sys.argv[1], index=sys.argv[2])
except data.DataSourceError as err:
    print(f"DataSourceError: {err}", file=sys.stderr)
    sys.exit(2)
print(json.dumps([[r.path, r.label, r.raw.hex()] for r in reviews]))
"""


def _blob_id(content: bytes) -> str:
    """The git blob id of ``content``: the hub's ``oid`` and ``ETag`` of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeHub:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 serving one dataset repository.

    Args:
        repo (str): the repository, ``"<org>/<name>"``.
        files (Mapping[str, bytes]): its files by path.
        fail (Mapping[str, int] | None): files that answer this HTTP status instead (the
            listing still names them). Default: ``None``.
    """

    def __init__(self, repo: str, files: Mapping[str, bytes],
                 fail: Mapping[str, int] | None = None) -> None:
        self.repo, self.files, self.fail = repo, dict(files), dict(fail or {})
        self.requests: list[str] = []  # "METHOD /path?query", in arrival order
        self.unknown: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer._answer(self)

            def do_HEAD(self) -> None:  # noqa: N802
                outer._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                outer._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _entries(self) -> dict[str, dict[str, object]]:
        """The tree listing's entries by path: every file and every folder above one."""
        entries: dict[str, dict[str, object]] = {}
        for path, content in sorted(self.files.items()):
            parts = path.split("/")
            for i in range(1, len(parts)):
                folder = "/".join(parts[:i])
                entries[folder] = {"type": "directory", "path": folder,
                                   "oid": hashlib.sha1(folder.encode()).hexdigest()}
            entries[path] = {"type": "file", "path": path, "size": len(content),
                             "oid": _blob_id(content)}
        return entries

    def _answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(h.rfile.read(length).decode()) if length else {}
        with self._lock:
            self.requests.append(f"{h.command} {h.path}")
        url = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        repo = re.escape(self.repo)
        revision = r"(?:main|" + COMMIT + ")"
        if match := re.fullmatch(rf"/datasets/{repo}/resolve/{revision}/(.+)", path):
            self._file(h, match[1])
        elif re.fullmatch(rf"/api/datasets/{repo}(?:/revision/{revision})?", path):
            siblings = [{"rfilename": f, "size": len(c)} for f, c in sorted(self.files.items())]
            self._send(h, 200, json.dumps({"id": self.repo, "sha": COMMIT, "private": False,
                                           "siblings": siblings}).encode())
        elif match := re.fullmatch(rf"/api/datasets/{repo}/tree/{revision}(?:/(.*))?", path):
            self._tree(h, (match[1] or "").strip("/"), query.get("recursive") == ["true"])
        elif re.fullmatch(rf"/api/datasets/{repo}/paths-info/{revision}", path):
            entries = self._entries()  # not asked for by datasets 5.2, but cheap to have
            found = [entries[p] for p in form.get("paths", []) if p in entries]
            self._send(h, 200, json.dumps(found).encode())
        elif re.fullmatch(r"/(?:api/)?datasets/[^/]+/[^/]+(?:/.*)?", path):
            self._send(h, 404, headers={"X-Error-Code": "RepoNotFound"})
        else:
            with self._lock:
                self.unknown.append(f"{h.command} {h.path}")
            self._send(h, 404)

    def _file(self, h: http.server.BaseHTTPRequestHandler, name: str) -> None:
        if name in self.fail:
            self._send(h, self.fail[name])
        elif name not in self.files:
            self._send(h, 404, headers={"X-Error-Code": "EntryNotFound"})
        else:
            content = self.files[name]
            self._send(h, 200, content, headers={"X-Repo-Commit": COMMIT,
                                                 "ETag": f'"{_blob_id(content)}"'})

    def _tree(self, h: http.server.BaseHTTPRequestHandler, folder: str, recursive: bool) -> None:
        entries = self._entries()
        if folder and entries.get(folder, {}).get("type") != "directory":
            self._send(h, 404, headers={"X-Error-Code": "EntryNotFound"})
            return
        prefix = folder + "/" if folder else ""
        listing = [entry for path, entry in entries.items() if path.startswith(prefix)
                   and (recursive or "/" not in path[len(prefix):])]
        self._send(h, 200, json.dumps(listing).encode())

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
              headers: Mapping[str, str] | None = None) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if body[:1] in (b"[", b"{"):
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


def parquet(rows: list[tuple[str, int]]) -> bytes:
    """A parquet file of ``(text, label)`` rows, ``label`` a neg/pos ClassLabel."""
    table = pa.table({"text": pa.array([t for t, _ in rows], pa.string()),
                      "label": pa.array([label for _, label in rows], pa.int64())})
    table = table.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": FEATURES}})})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def hub_env(endpoint: str, home: Path) -> dict[str, str]:
    """This environment pointed at ``endpoint``, with every Hugging Face cache under ``home``,
    no telemetry, and no token, offline switch or proxy of the caller's."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("HF_", "HUGGINGFACE_"))
           and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "TRANSFORMERS_OFFLINE")}
    env.update({
        "HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"), "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    return env


def read_hub(endpoint: str, index: Path, tmp_path: Path,
             name: str = REPO) -> subprocess.CompletedProcess[str]:
    """``data.read_hub(name, index=index)`` in a fresh interpreter against ``endpoint``."""
    return subprocess.run([sys.executable, "-c", READ_HUB, name, str(index)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
                          env=hub_env(endpoint, tmp_path / "hf"))


@pytest.fixture
def corpus(small_imdb: Path, tmp_path: Path) -> tuple[list[data.Review], Path]:
    """The small tree's reviews in sorted-walk order, and their index."""
    reviews = data.read_directory(small_imdb)
    index = tmp_path / "index.tsv.gz"
    data.write_index(reviews, index)
    return reviews, index


def shuffled_rows(reviews: list[data.Review]) -> list[tuple[str, int]]:
    rows = [(r.raw.decode(), r.label) for r in reviews]
    random.Random(0).shuffle(rows)  # any order: the hub's is the archive's
    return rows


@pytest.fixture
def hubs() -> Iterator[list[FakeHub]]:
    """Hubs that the test starts; all are closed after it."""
    started: list[FakeHub] = []
    yield started
    for hub in started:
        hub.close()


def test_read_hub_restores_the_corpus_from_loopback(
        corpus: tuple[list[data.Review], Path], tmp_path: Path, hubs: list[FakeHub]) -> None:
    """Every row comes back as its file: path, label and bytes, in Keras's walk order."""
    reviews, index = corpus
    rows = shuffled_rows(reviews)
    assert rows != [(r.raw.decode(), r.label) for r in reviews]  # the order is restored
    hub = FakeHub(REPO, {"README.md": CARD, PARQUET: parquet(rows)})
    hubs.append(hub)
    proc = read_hub(hub.endpoint, index, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [(path, label, bytes.fromhex(raw)) for path, label, raw in json.loads(proc.stdout)]
    assert got == [(r.path, r.label, r.raw) for r in reviews]
    assert len(got) == 40
    # It came from this server: the card, the listing and the parquet file were fetched.
    assert len(hub.requests) > 0
    assert f"GET /datasets/{REPO}/resolve/{COMMIT}/{PARQUET}" in hub.requests
    assert any(r.startswith(f"GET /api/datasets/{REPO}/tree/") for r in hub.requests)
    assert hub.unknown == []


def test_row_missing_from_the_index_is_refused(
        corpus: tuple[list[data.Review], Path], tmp_path: Path, hubs: list[FakeHub]) -> None:
    """One foreign review among the corpus's rows: a DataSourceError, no partial load."""
    reviews, index = corpus
    rows = shuffled_rows(reviews)
    rows.insert(17, ("a review from some other corpus", 1))
    hub = FakeHub(REPO, {"README.md": CARD, PARQUET: parquet(rows)})
    hubs.append(hub)
    proc = read_hub(hub.endpoint, index, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (f"DataSourceError: A row of {REPO} is not one of the IMDb training files"
            in proc.stderr), proc.stderr[-3000:]
    assert "'a review from some other corpus'" in proc.stderr
    assert proc.stdout == ""
    assert hub.requests and hub.unknown == []


def _closed_port() -> int:
    """A loopback port that nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("failure", ["data-file-404", "data-file-500", "no-such-repo",
                                     "unreachable"])
def test_hub_failures_are_a_data_source_error(
        failure: str, corpus: tuple[list[data.Review], Path], tmp_path: Path,
        hubs: list[FakeHub]) -> None:
    """A file the listing names but the server will not give, a repository it does not
    have, or no server at all: "Cannot load the hub dataset", never another exception."""
    reviews, index = corpus
    files = {"README.md": CARD, PARQUET: parquet(shuffled_rows(reviews))}
    fail = {"data-file-404": {PARQUET: 404}, "data-file-500": {PARQUET: 500}}.get(failure)
    hub = FakeHub("testorg/other" if failure == "no-such-repo" else REPO, files, fail)
    hubs.append(hub)
    endpoint = f"http://127.0.0.1:{_closed_port()}" if failure == "unreachable" else hub.endpoint
    proc = read_hub(endpoint, index, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"DataSourceError: Cannot load the hub dataset {REPO}: " in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert bool(hub.requests) == (failure != "unreachable")
    if failure == "data-file-500":  # retried, then given up
        assert hub.requests.count(f"HEAD /datasets/{REPO}/resolve/{COMMIT}/{PARQUET}") > 1
    assert hub.unknown == []


@pytest.mark.parametrize("failure", ["foreign-row", "data-file-404"])
def test_cli_refuses_a_bad_hub_in_one_line(failure: str, tmp_path: Path, hubs: list[FakeHub],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``--data hub`` against a fake ``stanfordnlp/imdb``: the packaged index, so a row it
    does not know, or a data file the hub will not give, is refused before any training.
    (A 500 would take the 23 s of huggingface_hub's retry waits here, which only the library
    cases skip.)"""
    rows = [("a review from some other corpus", 1)]
    fail = {PARQUET: 404} if failure == "data-file-404" else None
    hub = FakeHub(data.HUB_DATASET, {"README.md": CARD, PARQUET: parquet(rows)}, fail)
    hubs.append(hub)
    monkeypatch.delenv("EMBEDDINGS_DATA", raising=False)
    env = hub_env(hub.endpoint, tmp_path / "hf")
    env["EMBEDDINGS_CACHE"] = str(tmp_path / "cache")
    for key in list(os.environ):  # cli_error runs with os.environ plus its env
        if key not in env:
            monkeypatch.delenv(key)
    message = cli_error(["embeddings.train", "--data", "hub", *TINY_TRAIN_FLAGS,
                         "--out", str(tmp_path / "run")], env=env, cwd=tmp_path, timeout=120)
    expected = {"foreign-row": "is not one of the IMDb training files",
                "data-file-404": "Cannot load the hub dataset stanfordnlp/imdb"}[failure]
    assert message.startswith("error: ") and expected in message, message
    assert not (tmp_path / "run").exists()
    assert hub.requests and hub.unknown == []
