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

import argparse
import contextlib
import datetime
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import __version__, backends, runs
from embeddings.backends import HISTORY_KEYS, Hooks, TrainResult
from embeddings.backends.contract import EpochCallback
from embeddings.backends.distributed import env_rank
from embeddings.config import RunConfig, parse_args
from embeddings.data import CHUNK_ROWS, Splits, load_splits
from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.files import atomic_write_json
from embeddings.interrupt import Interrupted
from embeddings.memory import check_fits
from embeddings.runs import RunFormatError, checkpoint
from embeddings.runs.checkpoint import Checkpoints
from embeddings.runs.events import ScalarLog

log = logging.getLogger(__name__)


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
    table, its sink, their gradients and Adam's two moments (6 x V x D float32; the fused
    step of large tables holds less: an upper bound), every review's ids and the copy an
    epoch's order makes (2 x N x T int32), and the chunk the vectorizer holds as int64
    (:data:`embeddings.data.CHUNK_ROWS` x T)."""
    table = 6 * config.text.vocab_size * config.model.embedding_dim * 4
    ids = (2 * reviews * config.text.sequence_length * 4
           + CHUNK_ROWS * config.text.sequence_length * 8)
    check_fits(table + ids, f"--vocab-size {config.text.vocab_size} x --embedding-dim "
               f"{config.model.embedding_dim} with --sequence-length "
               f"{config.text.sequence_length} for {reviews:,} reviews",
               "Use smaller --vocab-size, --embedding-dim or --sequence-length.")


def run(config: RunConfig, on_epoch_end: EpochCallback | None = None) -> Path:
    """Train with ``config`` and write the run directory; returns its path.

    A run that checkpoints (:func:`embeddings.backends.saves_checkpoints`) makes its
    directory at its first checkpoint, marked ``INCOMPLETE`` until the end; one that does
    not makes it at the end.

    Raises:
        UsageError: a flag the backend refuses, a missing extra or device, unusable data,
            or an ``--out`` that is taken or that another run is writing; all found before
            training starts.
        Interrupted: SIGINT or SIGTERM (under :func:`embeddings.errors.cli`), at a step
            boundary: a checkpointing run saves a checkpoint first (its ``resume`` is the
            command that continues it); any other run leaves nothing behind.
    """
    backend = backends.get(config.train.backend)
    backends.check(backend, config)
    saves = backends.saves_checkpoints(backend, config)
    if env_rank() != 0:  # another rank of a torchrun launch: it trains, rank 0 writes
        out = Path(config.train.out or runs.default_path())
        checkpoints = (Checkpoints(lambda: out, config.train.checkpoint_steps, write=False)
                       if saves else None)
        _train(config, backend, lambda: out, checkpoints, None, write=False)
        return out
    out = runs.check_new(config.train.out or runs.default_path())
    with runs.staging(out) as stage:
        checkpoints = None
        if saves:
            checkpoints = Checkpoints(lambda: stage.path, config.train.checkpoint_steps,
                                      published=stage.publish)
        _train(config, backend, lambda: stage.path, checkpoints, on_epoch_end)
    return out


def resume(run_dir: str | Path, epochs: int | None = None,
           on_epoch_end: EpochCallback | None = None) -> Path:
    """Continue the run in ``run_dir`` from its latest checkpoint, with its own settings.

    The run ends with the same weights, bit for bit, and the same history as if it had
    never stopped (on the CPU).  A finished run goes on when ``epochs`` raises its total.

    Args:
        run_dir (str | Path): the run directory.
        epochs (int | None): the total number of epochs; ``None`` keeps the run's.
        on_epoch_end (EpochCallback | None): called after each epoch trained now.

    Returns:
        Path: ``run_dir``.

    Raises:
        UsageError: no such run, no usable checkpoint, ``epochs`` below the epochs
            done (or equal, for a finished run), data that changed, or another process
            training the run.
    """
    run_dir = Path(run_dir)
    raw = _recorded_config(run_dir)
    main = env_rank() == 0  # of a torchrun launch, rank 0 alone writes
    with runs.locked(run_dir) if main else contextlib.nullcontext():
        latest = checkpoint.load(run_dir)
        config = _more_epochs(runs.settings_of(raw), latest, epochs,
                              checkpoint.is_incomplete(run_dir), run_dir)
        backend = backends.get(config.train.backend)
        backends.check(backend, config)
        vocabulary = json.loads((run_dir / runs.VOCABULARY_FILE).read_text(encoding="utf-8"))
        checkpoints = Checkpoints(lambda: run_dir, config.train.checkpoint_steps,
                                  latest=latest, vocabulary=vocabulary, write=main)
        if not main:
            _train(config, backend, lambda: run_dir, checkpoints, None, write=False)
            return run_dir
        checkpoint.mark_incomplete(run_dir)
        atomic_write_json(run_dir / runs.CONFIG_FILE, {**raw, **config.to_dict()})
        log.info("resuming %s at epoch %d, step %d (%d epochs in all)", run_dir,
                 latest.epoch + 1, latest.step, config.train.epochs)
        try:
            _train(config, backend, lambda: run_dir, checkpoints, on_epoch_end)
        except Interrupted as stop:
            stop.resume = stop.resume or checkpoint.resume_command(run_dir)
            raise
    return run_dir


def _recorded_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of the run to resume, checked.

    Raises:
        RunFormatError: ``run_dir`` is no run directory, or its config is malformed.
    """
    if not (run_dir / runs.CONFIG_FILE).is_file():
        raise RunFormatError(f"{run_dir} is not a run directory ({runs.CONFIG_FILE} is "
                             f"missing). Received: --resume {run_dir}; pass a folder that "
                             "`python -m embeddings.train` wrote.")
    return runs.read_config(run_dir / runs.CONFIG_FILE)


def _more_epochs(config: RunConfig, latest: checkpoint.Checkpoint, epochs: int | None,
                 incomplete: bool, run_dir: Path) -> RunConfig:
    """``config`` with ``epochs`` as its total, checked against the epochs done."""
    total = config.train.epochs if epochs is None else epochs
    done = latest.epoch
    if total < done or (total == done and not incomplete):
        state = "finished" if not incomplete else "done"
        raise InvalidInput(
            f"{run_dir} has {done} epochs {state}, so --epochs {total} leaves nothing to "
            f"train. Received: --epochs {total}; pass --epochs {done + 1} or more to train "
            "on.")
    return RunConfig.from_dict({**config.to_dict(),
                                "train": {**config.to_dict()["train"], "epochs": total}})


def _write_start(folder: Path, config: RunConfig, source: str, backend: str,
                 vocabulary: list[str]) -> None:
    """The run's settings and vocabulary, written with its first checkpoint."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat()
    atomic_write_json(folder / runs.CONFIG_FILE, runs.run_config(
        config, {"backend": backend, "data_source": source, "started": started}))
    atomic_write_json(folder / runs.VOCABULARY_FILE, vocabulary)


def _train(config: RunConfig, backend: backends.Backend, folder: Callable[[], Path],
           checkpoints: Checkpoints | None, on_epoch_end: EpochCallback | None,
           write: bool = True) -> None:
    """Load the data, train with ``backend`` and write the run's files into ``folder()``
    (where the run is being written now: it moves at the first checkpoint); without
    ``write`` (a torchrun rank other than 0), train only."""
    splits = load_splits(config.data.data, validation_split=config.data.validation_split,
                         seed=config.data.split_seed, batch_size=config.train.batch_size,
                         text_column=config.data.text_column,
                         label_column=config.data.label_column)
    _check_memory(config, sum(splits.sizes()))
    if checkpoints is not None and checkpoints.latest is None:
        checkpoints.first_save = lambda where: _write_start(
            where, config, splits.source, backend.name, checkpoints.vocabulary or [])
    if not write:
        backend.train(config, splits, Hooks(checkpoints=checkpoints))
        return
    scalars = ScalarLog(folder)

    def log_epoch(epoch: int, logs: dict[str, float]) -> None:
        scalars.add_epoch(epoch, logs)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)

    result = backend.train(config, splits, Hooks(on_epoch_end=log_epoch,
                                                 checkpoints=checkpoints))
    runs.write_run(folder(), weights=result.weights, vocabulary=result.vocabulary,
                   config=runs.run_config(config, _record(config, result, splits)),
                   history=result.history)
    if checkpoints is not None:
        checkpoint.mark_complete(folder())


def _epoch_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    metrics = " - ".join(f"{k}: {logs[k]:.4f}" for k in HISTORY_KEYS if k != "seconds")
    return f"Epoch {epoch + 1}/{epochs} - {logs['seconds']:.2f}s - {metrics}"


def _resume_epochs(argv: Sequence[str]) -> int | None:
    """The ``--epochs`` given with ``--resume`` (the only flag it takes), or ``None``."""
    parser = ArgumentParser(prog="python -m embeddings.train --resume DIR",
                            allow_abbrev=False)
    parser.add_argument("--epochs", type=int, default=None, metavar="EPOCHS")
    known, rest = parser.parse_known_args(argv)
    if rest:
        parser.exit(2, f"{parser.prog}: error: --resume continues a run with its own "
                       f"settings (its config.json); only --epochs may be given with it. "
                       f"Received: {' '.join(rest)}; drop those flags.\n")
    epochs: int | None = known.epochs
    return epochs


RESUME_HELP = ("To continue a stopped or finished run: python -m embeddings.train "
               "--resume DIR [--epochs N] (its own settings; --epochs may raise the total).")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse flags, train (or ``--resume`` a run), print a Keras-style
    line per epoch."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--resume", default=None)
    known, rest = pre.parse_known_args(argv)
    if known.resume is not None:
        epochs = _resume_epochs(rest)
    else:
        config = parse_args(argv, prog="python -m embeddings.train",
                            description=__doc__.splitlines()[0], epilog=RESUME_HELP)
    main_rank = env_rank() == 0  # of a torchrun launch, rank 0 alone prints
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING,
                        format="%(message)s")

    def report_to(total: int) -> EpochCallback | None:
        if not main_rank:
            return None
        return lambda epoch, logs: print(_epoch_line(epoch, total, logs), flush=True)

    def body() -> int:
        start = time.perf_counter()
        if known.resume is not None:
            recorded = runs.settings_of(_recorded_config(Path(known.resume))).train.epochs
            out = resume(known.resume, epochs, report_to(epochs or recorded))
        else:
            out = run(config, report_to(config.train.epochs))
        if main_rank:
            print(f"Wrote {out} in {time.perf_counter() - start:.1f}s", flush=True)
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
