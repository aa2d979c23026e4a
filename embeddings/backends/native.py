"""``--backend torch``: the native PyTorch model, our embedding-bag op and Keras-rule Adam.

The loop is Keras's ``fit`` written out: each epoch walks the training rows in the
tutorial's order (:func:`~embeddings.backends.vectorized.epoch_order`) in batches,
reporting the loss and accuracy of each batch's forward pass before its update, then
evaluates the validation rows (batch-size-weighted mean loss, accuracy of logit > 0.5).
"""

from __future__ import annotations

import sys
import time

import torch
from tqdm.auto import tqdm

from embeddings import interrupt
from embeddings.backends.contract import (
    HISTORY_KEYS,
    HonoursEveryFlag,
    Hooks,
    TrainResult,
    initial_table,
)
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


class WeightedMean:
    """Keras's ``Mean`` metric of the batch losses, weighted by batch size, in float32:
    ``sum(loss_b * n_b) / sum(n_b)``, accumulated on the losses' device (what
    torchmetrics' ``MeanMetric`` computes, without importing it: about 1 s of start-up)."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device)
        self.weight = torch.zeros((), device=device)

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value * weight
        self.weight += weight

    def compute(self) -> float:
        return float(self.total / self.weight)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``predictions`` equal to ``labels``, as a float32 ratio of two counts
    (Keras's ``BinaryAccuracy`` total / count)."""
    correct = (predictions == labels).sum().to(torch.float32)
    return float(correct / torch.tensor(float(labels.numel()), device=labels.device))


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


def fit(model: SentimentClassifier, inputs: Vectorized, config: RunConfig,
        hooks: Hooks) -> dict[str, list[float]]:
    """Train ``model`` in place with Keras's Adam and return the Keras-style history."""
    optimizer = make_optimizer(model, config)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    device = inputs.train_ids.device
    batches = _batches(len(inputs.train_ids), config.train.batch_size)
    for epoch in range(config.train.epochs):
        start = time.perf_counter()
        ids, labels = inputs.train_ids, inputs.train_labels
        order = epoch_order(config, len(ids), epoch)
        if order is not None:
            order = order.to(device)
            ids, labels = ids[order], labels[order]
        loss_mean = WeightedMean(device)
        predictions = torch.empty_like(labels)  # gathered per step, counted once per epoch
        bar = tqdm(batches, desc=f"Epoch {epoch + 1}/{config.train.epochs}", unit="batch",
                   leave=False, disable=None, file=sys.stderr)
        for part in bar:
            with interrupt.step():  # a signal stops training between steps, not within
                logits = model(ids[part])
                loss = binary_crossentropy_from_logits(logits, labels[part])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_mean.update(loss.detach(), logits.shape[0])
                predictions[part] = keras_predictions(logits.detach())
            if hooks.on_step is not None:
                hooks.on_step(loss_mean.compute())
        val_loss, val_accuracy = evaluate(model, inputs.val_ids, inputs.val_labels,
                                          config.train.batch_size)
        logs = {"loss": loss_mean.compute(), "accuracy": accuracy(predictions, labels),
                "val_loss": val_loss, "val_accuracy": val_accuracy,
                "seconds": time.perf_counter() - start}
        for key in HISTORY_KEYS:
            history[key].append(logs[key])
        if hooks.on_epoch_end is not None:
            hooks.on_epoch_end(epoch, logs)
    return history


class NativeBackend(HonoursEveryFlag):
    """``--backend torch``: honours every flag."""

    name = "torch"

    def check_ready(self, config: RunConfig) -> None:
        resolve_device(config.train.device)

    def train(self, config: RunConfig, data: Splits, hooks: Hooks) -> TrainResult:
        device = resolve_device(config.train.device)
        torch.manual_seed(config.train.seed)
        inputs = vectorize(config, data, device)
        model = SentimentClassifier(config.text.vocab_size, config.model.embedding_dim,
                                    config.model.hidden_units,
                                    deterministic=config.train.deterministic or None,
                                    mask_padding=config.model.mask_padding)
        keras_init_(model, config.train.seed)
        table, report = initial_table(config, inputs.vectorizer.get_vocabulary(),
                                      model.embedding.embeddings.detach().numpy().copy())
        with torch.no_grad():
            model.embedding.embeddings.copy_(torch.from_numpy(table))
        history = fit(model.to(device), inputs, config, hooks)
        weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return inputs.result(history, weights, str(device), {"torch": torch.__version__},
                             report)


BACKEND = NativeBackend()
