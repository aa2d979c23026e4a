"""Where ``--backend torch``'s training loop stands between two steps, and its checkpoint form.

:class:`Progress` is the loop's own state: the position (the epoch in progress and the
steps of it already taken), the history of the finished epochs and the running metrics
of the epoch in progress.  With the model's weights, the optimizer's state (moments,
squared-gradient state, ``iterations``) and the random generators' states it is
everything a run needs to go on exactly where it stopped: :func:`snapshot` turns it into
a :class:`~embeddings.runs.checkpoint.Checkpoint`, :func:`resume_from` back.  The data
position needs no more than the epoch and the step: an epoch's order is a function of the
settings and the epoch (:func:`embeddings.backends.vectorized.epoch_order`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embeddings.backends.contract import HISTORY_KEYS
from embeddings.backends.distributed import World, sum_over_ranks
from embeddings.runs.checkpoint import Checkpoint, flatten, unflatten


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


@dataclass
class Progress:
    """The loop's state between steps (see the module docstring)."""

    epoch: int  # the epoch in progress, 0-based
    step: int  # steps of it already taken
    history: dict[str, list[float]]  # HISTORY_KEYS -> one value per finished epoch
    loss: WeightedMean  # the epoch's running mean loss
    correct: torch.Tensor  # () int64: the epoch's correct predictions so far

    @classmethod
    def new(cls, device: torch.device) -> Progress:
        """The state before the first step."""
        return cls(0, 0, {k: [] for k in HISTORY_KEYS}, WeightedMean(device),
                   torch.zeros((), dtype=torch.int64, device=device))

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, step)``."""
        return self.epoch, self.step

    def totals(self, world: World | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The epoch's loss sum, its weight and the correct count, summed over the ranks."""
        return (sum_over_ranks(self.loss.total, world), sum_over_ranks(self.loss.weight, world),
                sum_over_ranks(self.correct, world))

    def end_epoch(self, logs: dict[str, float], device: torch.device) -> None:
        """Record the finished epoch's ``logs`` and move to the next epoch's start."""
        for key in HISTORY_KEYS:
            self.history[key].append(logs[key])
        self.epoch, self.step = self.epoch + 1, 0
        self.loss = WeightedMean(device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)


def _rng_state() -> dict[str, Any]:
    """The states of torch's, NumPy's and Python's global generators (CUDA's when used)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": keys, "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy(), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


def snapshot(progress: Progress, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             world: World | None = None) -> Checkpoint:
    """The checkpoint of the loop at ``progress`` with ``model`` and ``optimizer``; its
    metrics are summed over the ``world``'s ranks (every rank must call it)."""
    total, weight, correct = progress.totals(world)
    tensors: dict[str, np.ndarray] = {}
    optimizer_state = optimizer.state_dict()
    optimizer_state["state"] = {str(k): v for k, v in optimizer_state["state"].items()}
    state = {
        "global_step": int(getattr(optimizer, "iterations", 0)),
        "model": flatten("model", model.state_dict(), tensors),
        "optimizer": flatten("optimizer", optimizer_state, tensors),
        "metrics": flatten("metrics", {"loss_total": total, "loss_weight": weight,
                                       "correct": correct}, tensors),
        "rng": flatten("rng", _rng_state(), tensors),
    }
    history = {k: list(v) for k, v in progress.history.items()}
    return Checkpoint(progress.epoch, progress.step, history, tensors, state)


def resume_from(checkpoint: Checkpoint, model: torch.nn.Module,
                optimizer: torch.optim.Optimizer, device: torch.device,
                world: World | None = None) -> Progress:
    """Load ``checkpoint`` into ``model``, ``optimizer`` and the random generators, and
    return the loop's :class:`Progress` at its position (of a data-parallel run, rank 0
    holds the saved metrics, the other ranks start theirs from zero: the sums agree).

    Raises:
        CheckpointError: the checkpoint lacks a tensor its state names.
    """
    state = unflatten(checkpoint.state, checkpoint.tensors,
                      lambda array: torch.from_numpy(np.array(array)))
    model.load_state_dict(state["model"])
    optimizer_state = state["optimizer"]
    optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
    optimizer.load_state_dict(optimizer_state)
    _set_rng_state(state["rng"])
    metrics = state["metrics"]
    if world is not None and world.rank != 0:
        metrics = {k: torch.zeros_like(v) for k, v in metrics.items()}
    loss = WeightedMean(device)
    loss.total, loss.weight = metrics["loss_total"].to(device), metrics["loss_weight"].to(device)
    history = {k: list(checkpoint.history.get(k, [])) for k in HISTORY_KEYS}
    return Progress(checkpoint.epoch, checkpoint.step, history, loss,
                    metrics["correct"].to(device))
