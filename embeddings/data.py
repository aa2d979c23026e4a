"""IMDb reviews in the tutorial's split and order.

:func:`load_imdb` returns the training and validation subsets that
``keras.utils.text_dataset_from_directory(..., validation_split=0.2, seed=123)``
makes, each as a :class:`datasets.Dataset` whose rows are already in the order
the tutorial's cached tf.data pipeline yields them in every epoch
(``PARITY.md`` section 6).  The training loop only walks the rows.

Sources, tried in this order when none is given: ``$EMBEDDINGS_DATA``, the local
cache (``$EMBEDDINGS_CACHE``, default ``~/.cache/embeddings``), the Hugging Face
dataset ``stanfordnlp/imdb``, and the original Stanford archive (downloaded once,
checksum-verified, extracted atomically into the cache).

Each row holds ``text`` (str), ``label`` (0 = neg, 1 = pos), ``path`` (relative
to the class folders' parent, e.g. ``neg/0_3.txt``) and ``raw``: ``None`` when
the file is valid UTF-8 (then ``text`` is lossless), else the file's exact bytes
(``text`` then shows them with U+FFFD).  :func:`exact_texts` picks the lossless
form, which is what the vectorizer must see to match TensorFlow.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embeddings.errors import InvalidInput
from embeddings.files import atomic_write_bytes, cache_dir
from embeddings.tfrandom import DEFAULT_GRAPH_SEED, shuffle_order

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

CLASSES = ("neg", "pos")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
HUB_DATASET = "stanfordnlp/imdb"
# One line per training file in sorted-walk order: "<path>\t<row key>" (see _row_key).
_INDEX_FILE = Path(__file__).with_name("imdb_train_index.tsv.gz")
_HOW_TO_POINT = (
    "Point at a local copy with --data PATH or EMBEDDINGS_DATA=PATH, where PATH is an aclImdb "
    "directory or the aclImdb_v1.tar.gz archive (from " + IMDB_URL + ")."
)


class DataSourceError(InvalidInput):
    """The IMDb source is missing, malformed or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class Review:
    """One labelled review file."""

    path: str  # "neg/0_3.txt": relative to the folder holding neg/ and pos/
    raw: bytes  # the file's exact bytes
    label: int  # 0 = neg, 1 = pos


def _walk_key(path: str) -> tuple[int, str, str]:
    """Keras's listing order: class, then the sorted ``os.walk`` root, then the file name."""
    cls, _, rest = path.partition("/")
    root, _, name = rest.rpartition("/")
    return CLASSES.index(cls), f"{cls}/{root}".rstrip("/"), name


def _is_review(name: str) -> bool:
    return name.lower().endswith(".txt")


def _checked(reviews: list[Review], where: str) -> list[Review]:
    for cls in CLASSES:
        if not any(r.path.startswith(cls + "/") for r in reviews):
            raise DataSourceError(
                f"No .txt reviews under `{cls}/` in {where}: an IMDb source needs both `neg/` and "
                f"`pos/` folders of .txt files. {_HOW_TO_POINT}"
            )
    reviews.sort(key=lambda r: _walk_key(r.path))
    return reviews


def _class_root(root: Path) -> Path:
    """The folder holding ``neg/`` and ``pos/``: ``root``, ``root/train`` or
    ``root/aclImdb/train``."""
    for candidate in (root, root / "train", root / "aclImdb" / "train"):
        if all((candidate / cls).is_dir() for cls in CLASSES):
            return candidate
    raise DataSourceError(
        f"No `neg/` and `pos/` folders in {root} (nor in its train/ or aclImdb/train/). "
        f"{_HOW_TO_POINT}"
    )


def read_directory(root: str | os.PathLike[str]) -> list[Review]:
    """Read the labelled reviews of an ``aclImdb`` directory in sorted-walk order.

    ``unsup/``, ``test/`` and files beside the class folders are ignored.

    Args:
        root (str | os.PathLike): ``aclImdb``, ``aclImdb/train``, or a folder holding ``aclImdb``.

    Returns:
        list[Review]: the ``neg`` reviews, then the ``pos`` reviews.

    Raises:
        DataSourceError: no class folders, no ``.txt`` files, or an unreadable file.
    """
    base = _class_root(Path(root))
    reviews = []
    for label, cls in enumerate(CLASSES):
        for dirpath, _, files in os.walk(base / cls):
            for name in files:
                if not _is_review(name):
                    continue
                full = Path(dirpath) / name
                try:
                    raw = full.read_bytes()
                except OSError as err:
                    raise DataSourceError(f"Cannot read review file {full}: {err}") from err
                reviews.append(Review(full.relative_to(base).as_posix(), raw, label))
    return _checked(reviews, str(base))


def read_tarball(archive: str | os.PathLike[str]) -> list[Review]:
    """Read the labelled training reviews straight from an aclImdb tarball.

    The class folders are ``train/neg`` and ``train/pos`` at any depth
    (``aclImdb/train/...`` in the original archive), or ``neg``/``pos`` at its top.

    Raises:
        DataSourceError: not a readable tarball, or no class folders in it.
    """
    found: dict[str, dict[str, Review]] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                parts = member.name.strip("/").split("/")
                if not member.isfile() or not _is_review(parts[-1]):
                    continue
                for i, part in enumerate(parts[:-1]):
                    if part in CLASSES and (i == 0 or parts[i - 1] == "train"):
                        base = "/".join(parts[:i])
                        rel = "/".join(parts[i:])
                        handle = tar.extractfile(member)
                        raw = handle.read() if handle else b""
                        found.setdefault(base, {})[rel] = Review(rel, raw, CLASSES.index(part))
                        break
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataSourceError(
            f"Cannot read {archive} as a tar archive: {err}. {_HOW_TO_POINT}"
        ) from err
    if not found:
        raise DataSourceError(f"No `train/neg/` or `train/pos/` .txt files in {archive}. "
                              f"{_HOW_TO_POINT}")
    # Prefer the training folder when several trees hold neg/ and pos/.
    base = max(found, key=lambda b: (b.endswith("train"), len(found[b])))
    return _checked(list(found[base].values()), f"{archive}:{base or '/'}")


def _row_key(raw: bytes, label: int) -> str:
    return hashlib.sha256(bytes([label]) + raw).hexdigest()[:16]


def write_index(reviews: Iterable[Review], path: str | os.PathLike[str]) -> None:
    """Write the table that maps hub rows (text, label) back to IMDb file names."""
    lines = "".join(f"{r.path}\t{_row_key(r.raw, r.label)}\n" for r in reviews)
    atomic_write_bytes(path, gzip.compress(lines.encode(), mtime=0))


def read_hub(name: str = HUB_DATASET, index: str | os.PathLike[str] = _INDEX_FILE) -> list[Review]:
    """Load the training split from the Hugging Face hub and restore the file names.

    The hub's rows carry no file names and follow the archive's order, but the
    split depends on Keras's sorted walk over file names, so each row is matched
    by (text, label) to the packaged table of the 25,000 training files.
    Identical duplicate reviews are interchangeable.

    Raises:
        DataSourceError: ``datasets`` cannot load it, or a row is not an IMDb training file.
    """
    import datasets

    try:
        rows = datasets.load_dataset(name, split="train")
    except Exception as err:  # noqa: BLE001 - datasets raises many types when offline
        raise DataSourceError(f"Cannot load the hub dataset {name}: {err}") from err
    by_key: dict[str, list[str]] = {}
    for line in gzip.decompress(Path(index).read_bytes()).decode().splitlines():
        rel, key = line.split("\t")
        by_key.setdefault(key, []).append(rel)
    reviews = []
    for text, label in zip(rows["text"], rows["label"], strict=True):
        raw = text.encode("utf-8", "surrogateescape")
        names = by_key.get(_row_key(raw, int(label)))
        if not names:
            raise DataSourceError(
                f"A row of {name} is not one of the IMDb training files this package knows "
                f"(label={label}, text starts {text[:60]!r}). {_HOW_TO_POINT}"
            )
        reviews.append(Review(names.pop(), raw, int(label)))
    return _checked(reviews, f"hub dataset {name}")


def download_imdb(
    url: str = IMDB_URL, sha256: str | None = IMDB_SHA256, cache: Path | None = None
) -> Path:
    """Download the aclImdb archive once and extract it into the cache.

    The archive is streamed to a temporary file with a progress bar, its SHA-256
    is checked, and it is extracted into a temporary folder that is renamed into
    place, so an interrupted download never leaves a half-written cache.

    Args:
        url (str): where the archive lives. Default: the Stanford URL.
        sha256 (str | None): expected digest; ``None`` skips the check. Default: the archive's.
        cache (Path | None): cache folder. Default: :func:`cache_dir`.

    Returns:
        Path: the extracted ``aclImdb`` directory.

    Raises:
        DataSourceError: the download failed or the checksum does not match.
    """
    from tqdm.auto import tqdm

    cache = cache or cache_dir()
    target = cache / "aclImdb"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        archive = Path(tmp) / "aclImdb_v1.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="aclImdb_v1.tar.gz") as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except OSError as err:
            raise DataSourceError(f"Cannot download {url}: {err}") from err
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataSourceError(
                f"The download from {url} is corrupt: its sha256 is {digest.hexdigest()}, "
                f"expected {sha256}. Nothing was kept; try again, or {_HOW_TO_POINT}"
            )
        staging = Path(tmp) / "extract"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError) as err:
            raise DataSourceError(f"Cannot extract the archive from {url}: {err}") from err
        extracted = staging / "aclImdb"
        if not extracted.is_dir():
            raise DataSourceError(
                f"The archive from {url} holds no aclImdb/ folder. {_HOW_TO_POINT}"
            )
        os.replace(extracted, target)
    return target


def read_source(source: str | os.PathLike[str] | None = None) -> tuple[list[Review], str]:
    """Read the labelled training reviews from ``source``, or find them.

    Args:
        source (str | os.PathLike | None): a directory, a tarball, ``"hub"``, an
            ``http(s)://`` URL, or ``None`` for ``$EMBEDDINGS_DATA`` and then the
            fallbacks (cache -> hub -> URL).

    Returns:
        tuple[list[Review], str]: the reviews in sorted-walk order, and a description of
        where they came from.

    Raises:
        DataSourceError: the source is unusable, or every fallback failed (the message
        lists what was tried).
    """
    source = source if source is not None else os.environ.get("EMBEDDINGS_DATA") or None
    if source is not None:
        text = str(source)
        if text == "hub":
            return read_hub(), f"hub:{HUB_DATASET}"
        if text.startswith(("http://", "https://")):
            digest = IMDB_SHA256 if text == IMDB_URL else None
            return read_directory(download_imdb(text, sha256=digest)), text
        path = Path(text).expanduser()
        if path.is_dir():
            return read_directory(path), str(path)
        if path.is_file():
            return read_tarball(path), str(path)
        raise DataSourceError(f"The IMDb source {text} does not exist. {_HOW_TO_POINT}")

    attempts: list[tuple[str, Callable[[], list[Review]]]] = [
        (f"local cache {cache_dir() / 'aclImdb'}", lambda: read_directory(_cached())),
        (f"Hugging Face hub dataset {HUB_DATASET}", read_hub),
        (f"download from {IMDB_URL}",
         lambda: read_directory(download_imdb(IMDB_URL, IMDB_SHA256))),
    ]
    failures = []
    for what, attempt in attempts:
        try:
            reviews = attempt()
        except DataSourceError as err:
            failures.append(f"- {what}: {err}")
            continue
        log.info("IMDb reviews from %s", what)
        return reviews, what
    raise DataSourceError(
        "Could not find the IMDb reviews. Tried:\n" + "\n".join(failures) + "\n" + _HOW_TO_POINT
    )


def _cached() -> Path:
    target = cache_dir() / "aclImdb"
    if not target.is_dir():
        raise DataSourceError("not downloaded yet")
    return target


def split_indices(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keras's training/validation split of ``n`` files in sorted-walk order.

    ``np.random.RandomState(seed).shuffle`` permutes the list, then the last
    ``int(validation_split * n)`` files are the validation subset.

    Returns:
        tuple[np.ndarray, np.ndarray]: the training and validation indices, in that order.

    Raises:
        ValueError: the split leaves one of the subsets empty.
    """
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    num_val = int(validation_split * n)
    if not 0 < num_val < n:
        raise InvalidInput(
            f"validation_split={validation_split} of {n} reviews leaves a subset empty. "
            f"Received: validation_split={validation_split}; use a value such that both subsets "
            "hold at least one review."
        )
    return order[:-num_val], order[-num_val:]


@functools.lru_cache(maxsize=32)
def tfdata_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The order in which the tutorial's tf.data pipeline yields a subset in one pass.

    ``text_dataset_from_directory`` shuffles each subset with ``shuffle(8 * batch_size,
    seed=seed)`` and no global seed, so pass ``k`` draws from the ``k``-th seed pair of
    ``Philox(87654321, seed)`` (``PARITY.md`` section 6.7).  The ring-buffer shuffle is a
    Python loop (about 19 ms for 20,000 rows here), so each order is computed once and
    returned read-only.

    Returns:
        np.ndarray: ``order[i]`` is the position, in the split order, of the i-th row.
    """
    order = shuffle_order(n, 8 * batch_size, DEFAULT_GRAPH_SEED, seed, pass_index)
    order.flags.writeable = False
    return order


def epoch_pass(epoch: int, reshuffle: bool) -> int:
    """Which tf.data pass of the training subset the tutorial's epoch ``epoch`` (0-based) reads.

    With ``.cache()`` (the tutorial) every epoch reads pass 0, the one ``adapt`` filled the
    cache with.  ``--reshuffle`` is the tutorial with ``.cache()`` removed from the training
    dataset: ``adapt`` reads pass 0, and Keras 3's ``fit`` then opens two iterators per
    epoch, trains on the first and drops the second, which it opens when the epoch's last
    batch is read (``EpochIterator._enumerate_iterator``).  Measured with TensorFlow 2.21 and
    Keras 3.15 by recording the batches ``fit`` sees: epochs 1, 2, 3 read passes 1, 3, 5.
    """
    return 2 * epoch + 1 if reshuffle else 0


def pass_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The rows of pass ``pass_index`` as positions in pass 0, the order :func:`load_imdb`
    returns: ``rows[pass_order(...)]`` is what that pass yields."""
    if pass_index == 0:
        return np.arange(n)
    return split_order(n, batch_size, seed)[tfdata_order(n, batch_size, seed, pass_index)]


def split_order(n: int, batch_size: int, seed: int) -> np.ndarray:
    """The rows in the split order (before tf.data's shuffle), as positions in pass 0:
    what ``text_dataset_from_directory`` hands to its ``shuffle``; equally, where each
    split-order row sits in pass 0."""
    return np.argsort(tfdata_order(n, batch_size, seed, 0))


def _to_dataset(reviews: list[Review]) -> datasets.Dataset:
    import datasets

    texts: list[str] = []
    raws: list[bytes | None] = []
    for r in reviews:
        try:
            texts.append(r.raw.decode("utf-8"))
            raws.append(None)
        except UnicodeDecodeError:
            texts.append(r.raw.decode("utf-8", "replace"))
            raws.append(r.raw)
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "path": datasets.Value("string"),
            "raw": datasets.Value("binary"),
        }
    )
    return datasets.Dataset.from_dict(
        {"text": texts, "label": [r.label for r in reviews], "path": [r.path for r in reviews],
         "raw": raws},
        features=features,
    )


def exact_texts(dataset: datasets.Dataset) -> list[str | bytes]:
    """Each row's lossless text: ``raw`` bytes where the file is not valid UTF-8, else ``text``."""
    return [r if r is not None else t
            for t, r in zip(dataset["text"], dataset["raw"], strict=True)]


@dataclass(frozen=True)
class Splits:
    """The tutorial's two subsets of the labelled reviews, each in pass-0 order."""

    train: datasets.Dataset
    val: datasets.Dataset
    source: str  # where the reviews came from


def load_splits(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> Splits:
    """The tutorial's training and validation subsets of the IMDb training reviews.

    Args:
        source (str | os.PathLike | None): see :func:`read_source`. Default: ``None``.
        validation_split (float): fraction held out. Default: ``0.2``.
        seed (int): seed of the split and of the tf.data shuffle. Default: ``123``.
        batch_size (int): the tutorial's batch size; the shuffle buffer is 8 times it.
            Default: ``1024``.

    Returns:
        Splits: ``train`` and ``val``, each in the order of the tutorial's first tf.data
        pass (every epoch's order, because of ``.cache()``), and the source's description.

    Raises:
        DataSourceError: the source is unusable.
        InvalidInput: ``validation_split`` leaves a subset empty.
    """
    if not 0.0 < validation_split < 1.0:
        raise InvalidInput(
            "validation_split must lie strictly between 0 and 1. "
            f"Received: validation_split={validation_split}"
        )
    reviews, where = read_source(source)
    train_idx, val_idx = split_indices(len(reviews), validation_split, seed)
    subsets = []
    for idx in (train_idx, val_idx):
        order = tfdata_order(len(idx), batch_size, seed, 0)
        subsets.append(_to_dataset([reviews[i] for i in idx[order]]))
    log.info("IMDb from %s: %d training and %d validation reviews", where, *map(len, subsets))
    return Splits(subsets[0], subsets[1], where)


def load_imdb(
    source: str | os.PathLike[str] | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 123,
    batch_size: int = 1024,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, val)`` of :func:`load_splits` with the same arguments."""
    splits = load_splits(source, validation_split=validation_split, seed=seed,
                         batch_size=batch_size)
    return splits.train, splits.val
