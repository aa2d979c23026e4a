"""Train the tutorial model: ``python -m embeddings.train``.

With the defaults this is TensorFlow's "Word embeddings" tutorial: IMDb, the
Keras split, the 10,000-token vectorizer, 15 epochs of Adam at batch 1024.
``--seed s`` starts from the weights TensorFlow draws for the tutorial with
``keras.utils.set_random_seed(s)``, and the batches come in the tutorial's
order, so the per-epoch history is TensorFlow's.  ``--backend`` chooses who trains
(:mod:`embeddings.backends`); every backend honours every flag or refuses it.

The run directory (``--out``, default ``runs/<timestamp>``, see :mod:`embeddings.runs`)
is assembled in a hidden sibling folder and renamed into place at the end, so a run
that fails or is stopped (Ctrl-C, SIGTERM: at a step boundary, exit 130 / 143) leaves
no half-written directory.
"""

from __future__ import annotations

import datetime
import logging
import platform
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import __version__, backends, runs
from embeddings.backends import HISTORY_KEYS, Hooks, TrainResult
from embeddings.backends.contract import EpochCallback
from embeddings.config import RunConfig, parse_args
from embeddings.data import CHUNK_ROWS, Splits, load_splits
from embeddings.errors import cli
from embeddings.memory import check_fits

log = logging.getLogger(__name__)


def _summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, with TensorBoard kept off TensorFlow.

    TensorBoard imports TensorFlow when it is installed unless the marker module
    ``tensorboard.compat.notf`` exists; registering it keeps every run of ours
    free of TensorFlow (TensorBoard then uses its own stub).
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def _record(config: RunConfig, result: TrainResult, splits: Splits) -> dict[str, Any]:
    """The ``run`` section of ``config.json``: what ran, where, on what, with which versions."""
    record: dict[str, Any] = {
        "backend": config.train.backend,
        "device": result.device,
        "data_source": splits.source,
        "standardize": "tutorial",
        "vocabulary_size": len(result.vocabulary),
        "train_reviews": result.train_reviews,
        "val_reviews": result.val_reviews,
        "versions": {"embeddings": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, **result.versions},
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if result.init_vectors is not None:
        record["init_vectors"] = result.init_vectors  # file, sha256, matched, words
    return record


def _check_memory(config: RunConfig, reviews: int) -> None:
    """Refuse sizes this machine cannot hold, before anything large is allocated: the
    table, its gradient, its squared-gradient sums and Adam's two moments (5 x V x D
    float32), every review's ids and the copy an epoch's order makes (2 x N x T int32),
    and the chunk the vectorizer holds as int64 (:data:`embeddings.data.CHUNK_ROWS` x T)."""
    table = 5 * config.text.vocab_size * config.model.embedding_dim * 4
    ids = (2 * reviews * config.text.sequence_length * 4
           + CHUNK_ROWS * config.text.sequence_length * 8)
    check_fits(table + ids, f"--vocab-size {config.text.vocab_size} x --embedding-dim "
               f"{config.model.embedding_dim} with --sequence-length "
               f"{config.text.sequence_length} for {reviews:,} reviews",
               "Use smaller --vocab-size, --embedding-dim or --sequence-length.")


def run(config: RunConfig, on_epoch_end: EpochCallback | None = None) -> Path:
    """Train with ``config`` and write the run directory; returns its path.

    Raises:
        UsageError: a flag the backend refuses, a missing extra or device, unusable data,
            or an ``--out`` that is taken or that another run is writing; all found before
            training starts.
        Interrupted: SIGINT or SIGTERM (under :func:`embeddings.errors.cli`), at a step
            boundary; nothing of the run is left behind.
    """
    backend = backends.get(config.train.backend)
    backends.check(backend, config)
    out = runs.check_new(config.train.out or runs.default_path())
    with runs.staged(out) as staging:
        splits = load_splits(config.data.data, validation_split=config.data.validation_split,
                             seed=config.data.split_seed, batch_size=config.train.batch_size,
                             text_column=config.data.text_column,
                             label_column=config.data.label_column)
        _check_memory(config, len(splits.train) + len(splits.val))
        SummaryWriter = _summary_writer_class()  # noqa: N806 - a class
        writers = {"": SummaryWriter(str(staging / runs.LOGS_DIR / "train")),
                   "val_": SummaryWriter(str(staging / runs.LOGS_DIR / "validation"))}

        def log_epoch(epoch: int, logs: dict[str, float]) -> None:
            for prefix, writer in writers.items():
                writer.add_scalar("epoch_loss", logs[prefix + "loss"], epoch)
                writer.add_scalar("epoch_accuracy", logs[prefix + "accuracy"], epoch)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)

        try:
            result = backend.train(config, splits, Hooks(on_epoch_end=log_epoch))
        finally:
            for writer in writers.values():
                writer.close()
        runs.write_run(staging, weights=result.weights, vocabulary=result.vocabulary,
                       config=runs.run_config(config, _record(config, result, splits)),
                       history=result.history)
    return out


def _epoch_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    metrics = " - ".join(f"{k}: {logs[k]:.4f}" for k in HISTORY_KEYS if k != "seconds")
    return f"Epoch {epoch + 1}/{epochs} - {logs['seconds']:.2f}s - {metrics}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse flags, train, print a Keras-style line per epoch."""
    config = parse_args(argv, prog="python -m embeddings.train",
                        description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def report(epoch: int, logs: dict[str, float]) -> None:
        print(_epoch_line(epoch, config.train.epochs, logs), flush=True)

    def body() -> int:
        start = time.perf_counter()
        out = run(config, report)
        print(f"Wrote {out} in {time.perf_counter() - start:.1f}s", flush=True)
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
