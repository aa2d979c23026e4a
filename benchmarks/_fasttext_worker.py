"""fastText's side of ``benchmarks.accuracy``: one training run in its own process.

Usage (started by :mod:`benchmarks.accuracy`, one process per repetition)::

    python -m benchmarks._fasttext_worker --data PATH [--word-ngrams 2] [--epoch 10]
                                          [--threads 2] [--seed 0]

It reads all 25,000 ``aclImdb/train`` reviews of ``--data`` with the project's reader
(:func:`embeddings.data.read_source`), standardizes them as the tutorial does
(:func:`embeddings.text.tokens.standardize` with ``"tutorial"``: ASCII lowercase,
``<br />`` to a space, the 32 ASCII punctuation bytes removed), writes them as
fastText's ``__label__neg|pos <tokens>`` lines in an order shuffled with ``--seed``, and
trains ``fasttext.train_supervised`` with its defaults (dimension 100, learning rate
0.1, softmax loss, ``minCount`` 1) except ``wordNgrams``, ``epoch`` and ``thread``.
Then it prints one JSON line, ``{"event": "trained", ...}``, and flushes it: the parent
stops the training clock when that line arrives, so the training time covers this
process's start, imports, reading, standardizing, writing and training, and not the
scoring.  ``peak_rss_kib`` on that line is this process's peak resident memory so far
(``ru_maxrss``), the test reviews not yet read.

Then it reads ``aclImdb/test`` (25,000 reviews), standardizes them the same way,
predicts each review's most probable label and prints the last line,
``{"event": "scored", "accuracy": ..., ...}``: the fraction of test reviews whose
predicted label is their own.

A review's tokens are joined with one space, so that each review is one line: fastText
reads a line as one example and splits it on ASCII whitespace, the same bytes the
vectorizer splits on.  The shuffle matters: the reader returns every ``neg`` review
before every ``pos`` one, and fastText's SGD walks its file in order, so on the sorted
file a model ends biased towards the last class (measured: 0.564 test accuracy in one
run of the defaults, 0.863 and 0.870 in two others).  fastText's ``predict`` takes
``str``; a test review that is not valid UTF-8 is decoded with U+FFFD
(``n_test_not_utf8`` counts them; the IMDb test split has none).

fastText (0.9.2, and the ``fasttext-numpy2`` build) initialises its input matrix in ten
blocks, one per training thread, so with ``thread=2`` only the first 20% of the rows get
``uniform(-1/dim, 1/dim)``; upstream the others are zeros, but this build leaves them as
allocated.  A large matrix (IMDb's: 112,533 words, or 2 million buckets with bigrams)
comes from fresh zero pages, so there it starts as upstream's (measured on IMDb with
``lr=0``: exactly 20% of the rows non-zero, none above ``1/dim``); a small one may come
from reused heap memory and fail with ``Encountered NaN``.  The tests, on a tiny corpus,
run with ``MALLOC_PERTURB_=255``, with which glibc zeroes every allocation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embeddings.data import CLASSES, Review, read_source
from embeddings.files import atomic_write_bytes
from embeddings.text import tokens

LABEL_PREFIX = "__label__"  # fastText's default ``label``
STANDARDIZE = "tutorial"


def standardized_lines(reviews: Sequence[Review]) -> list[bytes]:
    """Each review standardized as the tutorial does, its tokens joined by one space.

    Args:
        reviews (Sequence[Review]): labelled reviews.

    Returns:
        list[bytes]: one line per review, without label or newline.
    """
    texts = tokens.as_texts([r.raw for r in reviews])
    return [b" ".join(t.split()) for t in tokens.standardize(texts, STANDARDIZE, "utf-8")]


def training_file(reviews: Sequence[Review], path: Path, seed: int) -> None:
    """Write ``__label__<class> <tokens>`` lines, one per review, in a shuffled order
    (atomically).

    Args:
        reviews (Sequence[Review]): labelled reviews, in any order.
        path (Path): the file to write.
        seed (int): seed of the shuffle (``random.Random(seed).shuffle``).
    """
    labels = [f"{LABEL_PREFIX}{CLASSES[r.label]} ".encode() for r in reviews]
    lines = [label + line + b"\n"
             for label, line in zip(labels, standardized_lines(reviews), strict=True)]
    random.Random(seed).shuffle(lines)
    atomic_write_bytes(path, b"".join(lines))


def _peak_rss_kib() -> int:
    """This process's peak resident set size so far, KiB (Linux's ``ru_maxrss`` unit)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def run(data: str, word_ngrams: int, epoch: int, threads: int, seed: int) -> None:
    """Train on ``aclImdb/train``, report, score on ``aclImdb/test``, report.

    Args:
        data (str): an IMDb source with both labelled splits.
        word_ngrams (int): fastText's ``wordNgrams``.
        epoch (int): fastText's ``epoch``.
        threads (int): fastText's ``thread``.
        seed (int): seed of the training lines' shuffle.
    """
    import fasttext

    t0 = time.perf_counter()
    train, _ = read_source(data, subset="train")
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-fasttext-") as tmp:
        path = Path(tmp) / "train.txt"
        training_file(train, path, seed)
        t2 = time.perf_counter()
        try:
            model = fasttext.train_supervised(input=str(path), wordNgrams=word_ngrams,
                                              epoch=epoch, thread=threads, verbose=0)
        except RuntimeError as err:
            if "NaN" not in str(err):
                raise
            raise RuntimeError(f"fastText failed: {err} On a small corpus this is its "
                               "uninitialised input matrix (see benchmarks._fasttext_worker); "
                               "run with MALLOC_PERTURB_=255") from err
        t3 = time.perf_counter()
    _emit({"event": "trained", "n_train": len(train), "peak_rss_kib": _peak_rss_kib(),
           "read_s": t1 - t0, "preprocess_s": t2 - t1, "train_s": t3 - t2,
           "n_words": len(model.words), "bucket": model.bucket, "dim": model.dim,
           "lr": model.lr})
    del train

    test, _ = read_source(data, subset="test")
    lines = standardized_lines(test)
    not_utf8 = 0
    texts = []
    for line in lines:
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            not_utf8 += 1
            texts.append(line.decode("utf-8", "replace"))
    predicted, _ = model.predict(texts, k=1)
    correct = sum(bool(p) and p[0] == f"{LABEL_PREFIX}{CLASSES[r.label]}"
                  for p, r in zip(predicted, test, strict=True))
    _emit({"event": "scored", "accuracy": correct / len(test), "n_test": len(test),
           "n_test_not_utf8": not_utf8})


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and :func:`run`.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks._fasttext_worker",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="IMDb source with train/ and test/")
    parser.add_argument("--word-ngrams", type=int, default=1, help="fastText's wordNgrams")
    parser.add_argument("--epoch", type=int, default=5, help="fastText's epoch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="fastText's thread")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the training lines' shuffle")
    args = parser.parse_args(argv)
    run(args.data, args.word_ngrams, args.epoch, args.threads, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
