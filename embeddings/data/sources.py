"""Choosing the IMDb source: the one given, else ``$EMBEDDINGS_DATA``, else the fallbacks.

The fallbacks, tried in this order: the local cache (``$EMBEDDINGS_CACHE``, default
``~/.cache/embeddings``), the Hugging Face dataset ``stanfordnlp/imdb``, and the original
Stanford archive.  The download cache is reached through its module,
:mod:`embeddings.data.download`, so that its Stanford URL and sha256 are read there at
call time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from embeddings.data import download
from embeddings.data.hub import HUB_DATASET, read_hub
from embeddings.data.reviews import (
    _HOW_TO_POINT,
    DataSourceError,
    Review,
    _brief,
    check_subset,
    read_directory,
)
from embeddings.data.tarball import _read_archive

log = logging.getLogger(__name__)


def read_source(source: str | os.PathLike[str] | None = None, *,
                subset: str = "train") -> tuple[list[Review], str]:
    """Read the labelled reviews of one subset from ``source``, or find them.

    Args:
        source (str | os.PathLike | None): a directory, a tarball, ``"hub"`` (or
            ``"hub:stanfordnlp/imdb"``), an
            ``http(s)://`` URL (see :func:`~embeddings.data.download.read_url`), or
            ``None`` for ``$EMBEDDINGS_DATA`` and then the fallbacks (cache -> hub ->
            Stanford URL).
        subset (str): ``"train"`` (``aclImdb/train``: the training and validation
            reviews) or ``"test"`` (``aclImdb/test``, the hub's ``test`` split).
            Default: ``"train"``.

    Returns:
        tuple[list[Review], str]: the reviews in sorted-walk order, and a description of
        what they came from (a tarball or a URL with its sha256).

    Raises:
        InvalidInput: an unknown ``subset``.
        DataSourceError: the source is unusable or lacks ``subset``, or every fallback
        failed (the message lists what was tried).
    """
    check_subset(subset)
    source = source if source is not None else os.environ.get("EMBEDDINGS_DATA") or None
    if source is None:
        return _fallbacks(subset)
    text = str(source)
    if text in ("hub", f"hub:{HUB_DATASET}"):  # the second is how runs record it
        return read_hub(subset=subset), f"hub:{HUB_DATASET}"
    if text.startswith(("http://", "https://")):
        return download.read_url(text, subset=subset)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_directory(path, subset), str(path)
    if not path.exists():
        raise DataSourceError(f"The IMDb source {text} does not exist. {_HOW_TO_POINT}")
    return _read_archive(path, subset)


def _fallbacks(subset: str = "train") -> tuple[list[Review], str]:
    """The first of cache, hub and Stanford URL that works; else one line of what each
    said (its first sentence, the URL shortened to "it")."""
    folder = download.imdb_cache()
    attempts: list[tuple[str, Callable[[], tuple[list[Review], str]]]] = [
        ("cache", lambda: download._cached_imdb(folder, subset)),
        ("hub", lambda: (read_hub(subset=subset), f"hub:{HUB_DATASET}")),
        ("download", lambda: download._download(download.IMDB_URL, download.IMDB_SHA256, folder,
                                                subset)),
    ]
    failures = []
    for what, attempt in attempts:
        try:
            reviews, where = attempt()
        except DataSourceError as err:
            reason = str(err).replace(download.IMDB_URL, "it").split(". ")[0]  # first sentence
            failures.append(f"{what}: {_brief(reason, 70)}")
            continue
        log.info("IMDb reviews from %s", where)
        return reviews, where
    raise DataSourceError("No IMDb source worked (" + "; ".join(failures) + "). "
                          + _HOW_TO_POINT)
