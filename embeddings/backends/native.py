"""``--backend torch``: the native PyTorch model, our embedding-bag op and Keras-rule Adam.

The loop is Keras's ``fit`` written out: each epoch walks the training rows in the
tutorial's order (:func:`~embeddings.backends.vectorized.epoch_order`) in batches,
reporting the loss and accuracy of each batch's forward pass before its update, then
evaluates the validation rows (batch-size-weighted mean loss, accuracy of logit > 0.5).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import torch
from tqdm.auto import tqdm

from embeddings import interrupt
from embeddings.backends import distributed
from embeddings.backends.contract import (
    HonoursEveryFlag,
    Hooks,
    TrainResult,
    initial_table,
)
from embeddings.backends.distributed import World
from embeddings.backends.progress import Progress, WeightedMean, resume_from, snapshot
from embeddings.backends.vectorized import Vectorized, epoch_order, vectorize
from embeddings.config import RunConfig
from embeddings.data import Splits
from embeddings.errors import Unavailable
from embeddings.model import (
    SentimentClassifier,
    binary_crossentropy_from_logits,
    keras_init_,
    keras_predictions,
)
from embeddings.optim import KerasAdam, make_optimizer
from embeddings.runs.checkpoint import resume_command


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``.

    Raises:
        Unavailable: ``cuda`` without a GPU torch can see.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Unavailable(
            "device='cuda' was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Received: device='cuda'; use --device cpu or auto."
        )
    return torch.device(name)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``predictions`` equal to ``labels``, as a float32 ratio of two counts
    (Keras's ``BinaryAccuracy`` total / count)."""
    return _ratio((predictions == labels).sum(), labels.numel())


def _ratio(correct: torch.Tensor, count: int) -> float:
    return float(correct.to(torch.float32) / torch.tensor(float(count), device=correct.device))


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@torch.no_grad()
def evaluate(model: SentimentClassifier, ids: torch.Tensor, labels: torch.Tensor,
             batch_size: int) -> tuple[float, float]:
    """Keras's ``evaluate``: batch-size-weighted mean loss, and accuracy of logit > 0.5."""
    loss_mean = WeightedMean(ids.device)
    predictions = torch.empty_like(labels)
    for part in _batches(len(ids), batch_size):
        logits = model(ids[part])
        loss = binary_crossentropy_from_logits(logits, labels[part])
        loss_mean.update(loss, logits.shape[0])
        predictions[part] = keras_predictions(logits)
    return loss_mean.compute(), accuracy(predictions, labels)


def fit(model: SentimentClassifier, inputs: Vectorized, config: RunConfig, hooks: Hooks,
        world: World | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place with Keras's Adam and return the Keras-style history.

    With ``hooks.checkpoints`` it starts from their latest checkpoint, when there is one,
    saves one at every epoch's end and when due, and on SIGINT/SIGTERM saves one at the
    step boundary before the :class:`~embeddings.interrupt.Interrupted` goes on (carrying
    the command that resumes).  With a ``world`` it trains data-parallel
    (:mod:`embeddings.backends.distributed`): the ranks hold signals and stop together.
    """
    optimizer = make_optimizer(model, config)
    device = inputs.train_ids.device
    checkpoints = hooks.checkpoints
    progress = Progress.new(device)
    if checkpoints is not None and checkpoints.latest is not None:
        progress = resume_from(checkpoints.latest, model, optimizer, device, world)
    try:
        with interrupt.step() if world is not None else contextlib.nullcontext():
            _fit(model, optimizer, inputs, config, hooks, progress, world)
    except interrupt.Interrupted as stop:
        if checkpoints is not None:
            with interrupt.step():  # a second signal waits for the checkpoint
                latest = checkpoints.latest
                if latest is None or (latest.epoch, latest.step) != progress.position:
                    checkpoints.save(snapshot(progress, model, optimizer, world))
            stop.resume = resume_command(checkpoints.folder())
        raise
    return progress.history


def _step(model: SentimentClassifier, optimizer: KerasAdam, ids: torch.Tensor,
          labels: torch.Tensor, part: slice, progress: Progress, world: World | None) -> bool:
    """One optimizer step on the batch ``part`` (this rank's share of it, with a world);
    returns whether the ranks agreed to stop after it."""
    batch = part.stop - part.start
    local = part if world is None else distributed.shard(part, world)
    n = local.stop - local.start
    logits = model(ids[local])
    # The sum over this share divided by the whole batch: each review's gradient is the
    # one-process value.  An empty share still runs, for gradients of the right layout.
    loss = binary_crossentropy_from_logits(logits, labels[local], batch) if n else logits.sum()
    optimizer.zero_grad()
    loss.backward()
    stop = False
    if world is not None:
        stop = distributed.reduce_gradients(list(model.parameters()),
                                            interrupt.take_pending() is not None, world)
    optimizer.step()
    if n:
        progress.loss.update(loss.detach() * (batch / n), n)  # the share's mean, weighted
        progress.correct += (keras_predictions(logits.detach()) == labels[local]).sum()
    progress.step += 1
    return stop


def _fit(model: SentimentClassifier, optimizer: KerasAdam, inputs: Vectorized,
         config: RunConfig, hooks: Hooks, progress: Progress, world: World | None) -> None:
    """The loop of :func:`fit` from ``progress`` on.  ``progress`` changes only inside
    held blocks (a step; an epoch's end), so that wherever a signal stops the loop it
    describes a state the loop can continue from."""
    device = inputs.train_ids.device
    checkpoints = hooks.checkpoints
    batches = _batches(len(inputs.train_ids), config.train.batch_size)
    while progress.epoch < config.train.epochs:
        epoch, start = progress.epoch, time.perf_counter()
        ids, labels = inputs.train_ids, inputs.train_labels
        order = epoch_order(config, len(ids), epoch)
        if order is not None:
            order = order.to(device)
            ids, labels = ids[order], labels[order]
        bar = tqdm(batches[progress.step:], desc=f"Epoch {epoch + 1}/{config.train.epochs}",
                   unit="batch", initial=progress.step, total=len(batches), leave=False,
                   disable=None if world is None or world.rank == 0 else True,
                   file=sys.stderr)
        for part in bar:
            with interrupt.step():  # a signal stops training between steps, not within
                stop = _step(model, optimizer, ids, labels, part, progress, world)
            if hooks.on_step is not None:
                hooks.on_step(progress.loss.compute())
            if (checkpoints is not None and progress.step < len(batches)
                    and checkpoints.due(progress.step)):
                with interrupt.step():
                    checkpoints.save(snapshot(progress, model, optimizer, world))
            if stop:  # data-parallel: every rank stops after this same step
                raise interrupt.Interrupted(interrupt.take_pending() or signal.SIGTERM)
        with interrupt.step():  # the epoch's end: validation, history, hooks, checkpoint
            val_loss, val_accuracy = evaluate(model, inputs.val_ids, inputs.val_labels,
                                              config.train.batch_size)
            total, weight, correct = progress.totals(world)
            logs = {"loss": float(total / weight), "accuracy": _ratio(correct, len(labels)),
                    "val_loss": val_loss, "val_accuracy": val_accuracy,
                    "seconds": time.perf_counter() - start}
            progress.end_epoch(logs, device)
            if hooks.on_epoch_end is not None:
                hooks.on_epoch_end(epoch, logs)
            if checkpoints is not None:
                checkpoints.save(snapshot(progress, model, optimizer, world))


class NativeBackend(HonoursEveryFlag):
    """``--backend torch``: honours every flag, and resumes from its checkpoints."""

    name = "torch"
    resumable = True
    data_parallel = True

    def check_ready(self, config: RunConfig) -> None:
        resolve_device(config.train.device)

    def train(self, config: RunConfig, data: Splits, hooks: Hooks) -> TrainResult:
        device = distributed.local_device(resolve_device(config.train.device))
        world = distributed.start(device)
        torch.manual_seed(config.train.seed)
        inputs = vectorize(config, data, device)
        model = SentimentClassifier(config.text.vocab_size, config.model.embedding_dim,
                                    config.model.hidden_units,
                                    deterministic=config.train.deterministic or None,
                                    mask_padding=config.model.mask_padding,
                                    precision=config.train.precision)
        keras_init_(model, config.train.seed)
        vocabulary = inputs.vectorizer.get_vocabulary()
        if hooks.checkpoints is not None:
            hooks.checkpoints.begin(vocabulary)
        table, report = initial_table(config, vocabulary,
                                      model.embedding.embeddings.detach().numpy().copy())
        with torch.no_grad():
            model.embedding.embeddings.copy_(torch.from_numpy(table))
        history = fit(model.to(device), inputs, config, hooks, world)
        distributed.finish(world)
        weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return inputs.result(history, weights, str(device), {"torch": torch.__version__},
                             report)


BACKEND = NativeBackend()
