"""Train the tutorial model: ``python -m embeddings.train``.

With the defaults this is TensorFlow's "Word embeddings" tutorial: IMDb, the
Keras split, the 10,000-token vectorizer, 15 epochs of Adam at batch 1024.
``--seed s`` starts from the weights TensorFlow draws for the tutorial with
``keras.utils.set_random_seed(s)``, and the batches come in the tutorial's
order, so the per-epoch history is TensorFlow's.

A run directory (``--out``, default ``runs/<timestamp>``) receives
``model.safetensors``, ``vocabulary.json``, ``config.json``, ``history.json``,
``vectors.tsv``, ``metadata.tsv`` and TensorBoard logs under ``logs/``.  It is
assembled in a temporary sibling folder and renamed into place at the end, so a
run that fails leaves no half-written directory.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy
from tqdm.auto import tqdm

from embeddings import data as imdb
from embeddings.callbacks import HISTORY_KEYS, EpochCallback, epoch_report
from embeddings.config import RunConfig, parse_args
from embeddings.export import write_run
from embeddings.files import umask
from embeddings.model import (
    SentimentClassifier,
    binary_crossentropy_from_logits,
    keras_init_,
    keras_predictions,
)
from embeddings.optim import KerasAdam
from embeddings.text import TextVectorization

log = logging.getLogger(__name__)



@dataclass
class Prepared:
    """The vectorized data of a run, on its device."""

    vectorizer: TextVectorization
    train_ids: torch.Tensor  # (N_train, T) int64, in epoch order
    train_labels: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val, T)
    val_labels: torch.Tensor  # (N_val,)


def _summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, with TensorBoard kept off TensorFlow.

    TensorBoard imports TensorFlow when it is installed unless the marker module
    ``tensorboard.compat.notf`` exists; registering it keeps every run of ours
    free of TensorFlow (TensorBoard then uses its own stub).
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Received: device='cuda'; use --device cpu or auto."
        )
    return torch.device(name)


def prepare(config: RunConfig, device: torch.device) -> Prepared:
    """Load IMDb in the tutorial's split and order, adapt the vectorizer, vectorize both subsets."""
    train, val = imdb.load_imdb(
        config.data.data,
        validation_split=config.data.validation_split,
        seed=config.data.split_seed,
        batch_size=config.train.batch_size,
    )
    vectorizer = TextVectorization(
        max_tokens=config.text.vocab_size,
        standardize="tutorial",
        output_sequence_length=config.text.sequence_length,
    )
    train_texts = imdb.exact_texts(train)
    vectorizer.adapt(train_texts)

    def labels(ds: object) -> torch.Tensor:
        return torch.tensor(ds["label"], dtype=torch.int64, device=device)  # type: ignore[index]

    return Prepared(
        vectorizer=vectorizer,
        train_ids=vectorizer(train_texts).to(device),
        train_labels=labels(train),
        val_ids=vectorizer(imdb.exact_texts(val)).to(device),
        val_labels=labels(val),
    )


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@torch.no_grad()
def evaluate(
    model: SentimentClassifier, ids: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> tuple[float, float]:
    """Keras's ``evaluate``: batch-size-weighted mean loss, and accuracy of logit > 0.5."""
    loss_mean = MeanMetric().to(ids.device)
    predictions = torch.empty_like(labels)
    for part in _batches(len(ids), batch_size):
        logits = model(ids[part])
        loss = binary_crossentropy_from_logits(logits, labels[part])
        loss_mean.update(loss, weight=logits.shape[0])
        predictions[part] = keras_predictions(logits)
    accuracy = BinaryAccuracy().to(ids.device)
    accuracy.update(predictions, labels)
    return float(loss_mean.compute()), float(accuracy.compute())


def fit(
    model: SentimentClassifier,
    prepared: Prepared,
    config: RunConfig,
    on_epoch_end: EpochCallback | None = None,
    on_step: Callable[[float], None] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place with Keras's Adam and return the Keras-style history.

    Each epoch walks the training rows in order (a fresh order per epoch with
    ``--reshuffle``), reporting training loss and accuracy from each batch's
    forward pass before its update, then evaluates the validation rows.
    ``on_step`` receives the epoch's running mean loss after every step, the
    value Keras logs at each batch end.
    """
    optimizer = KerasAdam(model.parameters(), lr=config.train.learning_rate)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    device = prepared.train_ids.device
    batches = _batches(len(prepared.train_ids), config.train.batch_size)
    for epoch in range(config.train.epochs):
        start = time.perf_counter()
        ids, labels = prepared.train_ids, prepared.train_labels
        if config.data.reshuffle:
            order = torch.from_numpy(
                imdb.reshuffled_order(len(ids), epoch, config.train.seed)
            ).to(device)
            ids, labels = ids[order], labels[order]
        loss_mean = MeanMetric().to(device)
        accuracy = BinaryAccuracy().to(device)
        predictions = torch.empty_like(labels)  # gathered per step, counted once per epoch
        bar = tqdm(batches, desc=f"Epoch {epoch + 1}/{config.train.epochs}", unit="batch",
                   leave=False, disable=None, file=sys.stderr)
        for part in bar:
            logits = model(ids[part])
            loss = binary_crossentropy_from_logits(logits, labels[part])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_mean.update(loss.detach(), weight=logits.shape[0])
            predictions[part] = keras_predictions(logits.detach())
            if on_step is not None:
                on_step(float(loss_mean.compute()))
        accuracy.update(predictions, labels)
        val_loss, val_accuracy = evaluate(
            model, prepared.val_ids, prepared.val_labels, config.train.batch_size
        )
        logs = {
            "loss": float(loss_mean.compute()),
            "accuracy": float(accuracy.compute()),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "seconds": time.perf_counter() - start,
        }
        for key in HISTORY_KEYS:
            history[key].append(logs[key])
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    return history


def fit_keras(
    prepared: Prepared, config: RunConfig, on_epoch_end: EpochCallback | None = None,
    on_step: Callable[[float], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, torch.Tensor]]:
    """Train the Keras 3 ``Sequential`` on the torch backend with ``model.fit``.

    It starts from the same seeded weights as the native model and sees the
    batches in the same order; :mod:`embeddings.keras_model` makes its Adam step
    TensorFlow's.  Returns the Keras-style history and the trained weights under
    the native parameter names.  ``on_step`` is as for :func:`fit`.
    """
    from embeddings import keras_model

    keras = keras_model.keras
    native = SentimentClassifier(config.text.vocab_size, config.model.embedding_dim,
                                 config.model.hidden_units)
    keras_init_(native, config.train.seed)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}

    device = prepared.train_ids.device
    with keras.device(keras_model.keras_device(device)):
        model = keras_model.build_model(
            config.text.vocab_size, config.model.embedding_dim, config.model.hidden_units,
            sequence_length=config.text.sequence_length,
        )
        keras_model.set_native_weights(model, native.state_dict())
        model.fit(
            prepared.train_ids.cpu().numpy(), prepared.train_labels.cpu().numpy(),
            batch_size=config.train.batch_size, epochs=config.train.epochs,
            shuffle=config.data.reshuffle,
            validation_data=(prepared.val_ids.cpu().numpy(), prepared.val_labels.cpu().numpy()),
            validation_batch_size=config.train.batch_size,
            callbacks=[epoch_report(keras, history, on_epoch_end, on_step)],
            verbose=1 if sys.stdout.isatty() else 0,
        )
    return history, keras_model.native_weights(model)


def _epoch_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    metrics = " - ".join(f"{k}: {logs[k]:.4f}" for k in HISTORY_KEYS if k != "seconds")
    return f"Epoch {epoch + 1}/{epochs} - {logs['seconds']:.2f}s - {metrics}"


def _new_run_dir(out: str | None) -> Path:
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / stamp
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(
            f"The run directory {path} already exists and is not empty. Received: out={out!r}; "
            "pass a new --out (runs are never overwritten)."
        )
    return path


@dataclass
class Trained:
    """What a backend's training hands to the run writer."""

    history: dict[str, list[float]]
    weights: dict[str, torch.Tensor]  # native names
    vocabulary: list[str]
    counts: tuple[int, int]  # training and validation reviews


def _train(config: RunConfig, device: torch.device, log_epoch: EpochCallback) -> Trained:
    """Load the data and train with ``config.train.backend``."""
    backend = config.train.backend
    if backend == "tf":
        from embeddings import tf_backend

        tf_backend.import_tensorflow()  # fail before the data is read
        train, val = imdb.load_imdb(config.data.data, validation_split=config.data.validation_split,
                                    seed=config.data.split_seed, batch_size=config.train.batch_size)
        history, weights, vocabulary = tf_backend.fit_tf(
            train, val, vocab_size=config.text.vocab_size,
            sequence_length=config.text.sequence_length,
            embedding_dim=config.model.embedding_dim, hidden_units=config.model.hidden_units,
            batch_size=config.train.batch_size, epochs=config.train.epochs,
            learning_rate=config.train.learning_rate, seed=config.train.seed,
            reshuffle=config.data.reshuffle, on_epoch_end=log_epoch)
        return Trained(history, weights, vocabulary, (len(train), len(val)))
    if backend == "keras":
        from embeddings import keras_model  # noqa: F401 - fail before the data is read
    prepared = prepare(config, device)
    if backend == "keras":
        history, weights = fit_keras(prepared, config, log_epoch)
    else:
        model = SentimentClassifier(config.text.vocab_size, config.model.embedding_dim,
                                    config.model.hidden_units,
                                    deterministic=config.train.deterministic or None)
        keras_init_(model, config.train.seed)
        history = fit(model.to(device), prepared, config, log_epoch)
        weights = model.state_dict()
    return Trained(history, weights, prepared.vectorizer.get_vocabulary(),
                   (len(prepared.train_ids), len(prepared.val_ids)))


def run(config: RunConfig, on_epoch_end: EpochCallback | None = None) -> Path:
    """Train with ``config`` and write the run directory; returns its path."""
    out = _new_run_dir(config.train.out)
    device = resolve_device(config.train.device)
    torch.manual_seed(config.train.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700; give the usual mode
    try:
        SummaryWriter = _summary_writer_class()  # noqa: N806 - a class
        writers = {
            "train": SummaryWriter(str(staging / "logs" / "train")),
            "validation": SummaryWriter(str(staging / "logs" / "validation")),
        }

        def log_epoch(epoch: int, logs: dict[str, float]) -> None:
            for prefix, writer in (("", writers["train"]), ("val_", writers["validation"])):
                writer.add_scalar("epoch_loss", logs[prefix + "loss"], epoch)
                writer.add_scalar("epoch_accuracy", logs[prefix + "accuracy"], epoch)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)

        trained = _train(config, device, log_epoch)
        for writer in writers.values():
            writer.close()
        run_config = {
            **config.to_dict(),
            "run": {
                "backend": config.train.backend,
                "device": str(device) if config.train.backend != "tf" else "tensorflow",
                "data_source": str(config.data.data or os.environ.get("EMBEDDINGS_DATA")
                                   or "default sources"),
                "standardize": "tutorial",
                "vocabulary_size": len(trained.vocabulary),
                "train_reviews": trained.counts[0],
                "val_reviews": trained.counts[1],
                "torch": torch.__version__,
                "python": platform.python_version(),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            },
        }
        write_run(staging, state_dict=trained.weights, vocabulary=trained.vocabulary,
                  config=run_config, history=trained.history)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse flags, train, print a Keras-style line per epoch."""
    config = parse_args(argv, prog="python -m embeddings.train",
                        description=__doc__.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    epochs = config.train.epochs

    def report(epoch: int, logs: dict[str, float]) -> None:
        print(_epoch_line(epoch, epochs, logs), flush=True)

    start = time.perf_counter()
    try:
        out = run(config, report)
    except (imdb.DataSourceError, ValueError, NotImplementedError, RuntimeError,
            ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {out} in {time.perf_counter() - start:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
