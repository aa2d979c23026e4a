"""Time whole training epochs on IMDb at the tutorial's settings, backend by backend.

Usage::

    python -m benchmarks.epoch [--data PATH] [--epochs 10] [--backends torch,keras,keras_plain,tf]
                               [--out REPORT.json]

The parent loads and vectorizes IMDb once (:func:`embeddings.backends.vectorized.vectorize`,
``RunConfig()`` defaults, CPU), for the arrays' digests and for ``keras_plain``, which
gets the four id/label arrays as ``.npy`` files.  Every backend runs in its own
subprocess of this interpreter (``--worker``), because Keras holds one backend per
process and so that no run inherits another's threads, caches or compiled graphs:

* ``torch``, ``keras``, ``tf``: the backend's ``train`` (:mod:`embeddings.backends`),
  exactly what ``python -m embeddings.train --backend NAME`` runs, on the reviews the
  worker loads itself (loading and vectorizing are outside the epoch times).  ``tf``
  runs only when this interpreter can import TensorFlow; its model begins with Keras's
  ``TextVectorization``, so each of its epochs also tokenizes the 25,000 reviews, as
  the tutorial does;
* ``keras_plain``: stock Keras 3 on torch, ``build_model(..., exact_embedding=False)``,
  ``model.fit`` on the parent's NumPy arrays, batch 1024, ``shuffle=False``.

An epoch is 20,000 training reviews in batches of 1024 plus the evaluation of the
5,000 validation reviews, both inside the epoch time.  The first epoch is a
warm-up, left out of the median.  The JSON report (default
``benchmarks/reports/epoch-<host>-<date>.json``) holds the environment, the
per-epoch seconds, median and spread, reviews per second and time ratios versus
``torch`` and ``keras_plain``.  Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from embeddings.errors import ArgumentParser

BACKENDS = ("torch", "keras", "keras_plain", "tf")
EPOCHS = 10
WARMUP_EPOCHS = 1
WORKER_TIMEOUT_S = 1800
ARRAYS = ("train_ids", "train_labels", "val_ids", "val_labels")


def _config(source: str | None, epochs: int) -> Any:
    """The tutorial's ``RunConfig`` on the CPU, with ``epochs`` epochs."""
    from embeddings.config import DataConfig, RunConfig, TrainConfig

    return RunConfig(data=DataConfig(data=source),
                     train=dataclasses.replace(TrainConfig(), epochs=epochs, device="cpu"))


def save_arrays(arrays: dict[str, np.ndarray], folder: Path) -> dict[str, str]:
    """Write the ids and labels as ``.npy`` (no pickle); return their SHA-256s."""
    digests = {}
    for name in ARRAYS:
        array = arrays[name]
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
        digests[name] = hashlib.sha256(array.tobytes()).hexdigest()
    return digests


def _splits(config: Any) -> Any:
    from embeddings.data import load_splits

    return load_splits(config.data.data, validation_split=config.data.validation_split,
                       seed=config.data.split_seed, batch_size=config.train.batch_size)


def load_arrays(folder: Path | None, config: Any) -> dict[str, np.ndarray]:
    """The parent's id and label arrays from ``folder``, or freshly vectorized ones."""
    if folder is None:
        from embeddings.backends.vectorized import vectorize

        inputs = vectorize(config, _splits(config), torch.device("cpu"))
        return {name: getattr(inputs, name).numpy() for name in ARRAYS}
    return {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in ARRAYS}


def _final(history: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(history[k][-1]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")
            if history.get(k)}


def run_backend(backend: str, config: Any, folder: Path | None) -> dict[str, Any]:
    """Train one backend for ``config.train.epochs`` epochs in this process.

    Args:
        backend (str): one of ``BACKENDS``.
        config (RunConfig): the tutorial's settings.
        folder (Path | None): the parent's arrays, or ``None`` to prepare here.

    Returns:
        dict[str, Any]: ``seconds`` per epoch, the ``final`` epoch's metrics and versions.
    """
    from embeddings import backends
    from embeddings.ops import cpu

    if backend == "keras_plain":
        history = _fit_keras_plain(load_arrays(folder, config), config)
        versions = {"keras": sys.modules["keras"].__version__}
    else:
        result = backends.get(backend).train(config, _splits(config), backends.Hooks())
        history, versions = result.history, result.versions
    return {"backend": backend, "seconds": history["seconds"], "final": _final(history),
            "kernels_available": cpu.available(), "torch_num_threads":
            torch.get_num_threads(), **versions}


def _fit_keras_plain(arrays: dict[str, np.ndarray], config: Any) -> dict[str, list[float]]:
    """Stock Keras 3 on torch: ``model.fit`` with ``Embedding`` and ``Adam`` as shipped."""
    from embeddings import keras_model

    keras = keras_model.keras
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            seconds.append(time.perf_counter() - self.start)

    keras.utils.set_random_seed(config.train.seed)
    with keras.device("cpu"):
        model = keras_model.build_model(config.text.vocab_size,
                                        sequence_length=config.text.sequence_length,
                                        exact_embedding=False)
        fitted = model.fit(
            arrays["train_ids"], arrays["train_labels"],
            batch_size=config.train.batch_size, epochs=config.train.epochs, shuffle=False,
            validation_data=(arrays["val_ids"], arrays["val_labels"]),
            callbacks=[EpochTimer()], verbose=0)
    history: dict[str, list[float]] = {k: [float(x) for x in v]
                                       for k, v in fitted.history.items()}
    history["seconds"] = seconds
    return history


def spawn(backend: str, epochs: int, source: str | None, folder: Path) -> dict[str, Any]:
    """Run ``--worker`` for one backend in a subprocess of this interpreter.

    Returns:
        dict[str, Any]: the worker's JSON, or ``{"skipped": why}``.
    """
    if backend == "tf" and importlib.util.find_spec("tensorflow") is None:
        return {"skipped": f"skipped: TensorFlow not installed ({sys.executable} cannot import "
                           "tensorflow)"}
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cmd = [sys.executable, "-m", "benchmarks.epoch", "--worker", "--backends", backend,
           "--epochs", str(epochs), "--arrays", str(folder)]
    if source is not None:
        cmd += ["--data", source]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=common.REPO,
                              timeout=WORKER_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"skipped": f"skipped: worker failed: {err}"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"skipped: worker exited {proc.returncode}: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarize(results: dict[str, dict[str, Any]], n_train: int) -> dict[str, dict[str, Any]]:
    """Per backend: epoch statistics without the warm-up, reviews/s and time ratios.

    Args:
        results (dict[str, dict[str, Any]]): worker results by backend.
        n_train (int): training reviews per epoch.

    Returns:
        dict[str, dict[str, Any]]: the worker result plus ``epoch`` stats,
        ``reviews_per_s``, ``ratio_vs_torch`` and ``ratio_vs_keras_plain`` (this backend's
        median epoch time over theirs; < 1 is faster).
    """
    out: dict[str, dict[str, Any]] = {}
    for backend, result in results.items():
        out[backend] = dict(result)
        seconds = result.get("seconds") or []
        if seconds:
            timed = seconds[WARMUP_EPOCHS:] or seconds
            out[backend]["epoch"] = common.stats(timed)
            out[backend]["reviews_per_s"] = n_train / out[backend]["epoch"]["median_s"]
    for backend in out:
        for base in ("torch", "keras_plain"):
            mine, theirs = out[backend].get("epoch"), out.get(base, {}).get("epoch")
            if mine and theirs:
                out[backend][f"ratio_vs_{base}"] = mine["median_s"] / theirs["median_s"]
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag or backend, or fewer than one epoch.
    """
    parser = ArgumentParser(prog="python -m benchmarks.epoch",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="aclImdb directory or tarball (default: $EMBEDDINGS_DATA, then the "
                             "package's fallbacks)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help=f"epochs per backend; the first {WARMUP_EPOCHS} is a warm-up")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated from {','.join(BACKENDS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/epoch-<host>-<date>.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arrays", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backends if b not in BACKENDS]
    if bad or not args.backends:
        parser.error(f"--backends takes names from {','.join(BACKENDS)}. Received: "
                     f"--backends={','.join(args.backends)}")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1. Received: --epochs={args.epochs}")
    if args.worker and len(args.backends) != 1:
        parser.error("--worker runs exactly one backend. Received: "
                     f"--backends={','.join(args.backends)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one backend), print and write the report.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0, or 1 when every requested backend was skipped.
    """
    args = parse_args(argv)
    source = args.data if args.data is not None else os.environ.get("EMBEDDINGS_DATA")
    config = _config(source, args.epochs)
    if args.worker:
        print(json.dumps(run_backend(args.backends[0], config, args.arrays)))
        return 0
    from embeddings.ops import cpu

    out = args.out or common.default_out("epoch")
    load_before = os.getloadavg()
    start = time.perf_counter()
    arrays = load_arrays(None, config)
    prepare_s = time.perf_counter() - start
    n_train, n_val = len(arrays["train_ids"]), len(arrays["val_ids"])
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-epoch-") as tmp:
        digests = save_arrays(arrays, Path(tmp))
        for backend in args.backends:
            results[backend] = spawn(backend, args.epochs, source, Path(tmp))
            print(f"{backend}: {results[backend].get('skipped') or 'done'}", flush=True)
    summary = summarize(results, n_train)
    report = {
        "benchmark": "epoch",
        "environment": common.environment(),
        "kernels_available": cpu.available(),
        "data": {"source": source or "default fallbacks", "n_train": n_train, "n_val": n_val,
                 "arrays_sha256": digests, "prepare_s": prepare_s},
        "config": {**config.to_dict(), "warmup_epochs": WARMUP_EPOCHS, "device": "cpu"},
        "notes": {
            "epoch": f"{n_train} training reviews + evaluation of {n_val} validation reviews",
            "tf": "fed texts: its epochs include Keras TextVectorization of every review",
            "ratios": "backend median epoch seconds / base median (< 1: faster)",
        },
        "backends": summary,
        "loadavg": {"before": list(load_before), "after": list(os.getloadavg())},
    }
    common.write_json(out, report)
    for backend, row in summary.items():
        if "epoch" not in row:
            print(f"backend={backend:<12} {row.get('skipped', 'no timings')}")
            continue
        e = row["epoch"]
        ratios = " ".join(f"x_{b}={row[f'ratio_vs_{b}']:.2f}" for b in ("torch", "keras_plain")
                          if f"ratio_vs_{b}" in row)
        print(f"backend={backend:<12} device=cpu epochs={len(row['seconds'])} "
              f"median_s={e['median_s']:.3f} (IQR {e['iqr_s']:.3f}, {e['min_s']:.3f}.."
              f"{e['max_s']:.3f}) reviews/s={row['reviews_per_s']:.0f} {ratios} "
              f"val_accuracy={row['final'].get('val_accuracy', float('nan')):.4f}")
    print(f"report: {out}")
    return 0 if any("epoch" in row for row in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
