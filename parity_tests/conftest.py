"""Parity fixtures and the parity report.

TensorFlow's recorded outputs live in ``fixtures/`` (or ``$EMBEDDINGS_FIXTURES``).
Every check records its measured deviation and bound through the ``report``
fixture; at the end of the session ``parity-report.md`` and ``parity-report.png``
are written (to ``$EMBEDDINGS_PARITY_REPORT``, default the current folder).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embeddings.testing import assert_close, tensorflow_python

FIXTURES = Path(os.environ.get("EMBEDDINGS_FIXTURES") or Path(__file__).parent / "fixtures")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


_TF_RUN = """
import json, sys
from embeddings import backends
from embeddings.config import RunConfig
from embeddings.data import load_splits
out = {}
for name, (preset, settings) in json.loads(sys.argv[1]).items():
    config = RunConfig.from_preset(preset, **settings, device="cpu", backend="tf")
    splits = load_splits(validation_split=config.data.validation_split,
                         seed=config.data.split_seed, batch_size=config.train.batch_size)
    out[name] = backends.get("tf").train(config, splits, backends.Hooks()).history
print("RESULT " + json.dumps(out))
"""


def tensorflow_histories(runs: dict[str, tuple[str, dict[str, Any]]]
                         ) -> dict[str, dict[str, list[float]]]:
    """Train each named run, ``(preset, settings)``, with ``--backend tf`` on the CPU in one
    subprocess (Keras on TensorFlow, which this process must not load) and return each
    history."""
    python, env = tensorflow_python()
    proc = subprocess.run([python, "-c", _TF_RUN, json.dumps(runs)], capture_output=True,
                          text=True, env=env, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    histories: dict[str, dict[str, list[float]]] = json.loads(
        proc.stdout.split("RESULT ", 1)[1])
    return histories


def load_fixture(name: str) -> Any:
    """A JSON fixture, or an ``.npz`` of arrays (loaded without pickle)."""
    path = FIXTURES / name
    if not path.exists():
        raise FileNotFoundError(
            f"TensorFlow reference {path} is missing: run "
            "`python parity_tests/reference/make_reference.py --data PATH` with the tf extra"
        )
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Report:
    """Checks and curves gathered during the session."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def check(self, name: str, backend: str, measured: float, bound: float,
              note: str = "") -> None:
        """Record one comparison: its largest deviation and the bound it is held to."""
        self.checks.append({"check": name, "backend": backend, "measured": float(measured),
                            "bound": float(bound), "ok": float(measured) <= bound,
                            "note": note})


_REPORT = Report()


def hold_history(report: Report, label: str, backend: str, ours: dict[str, list[float]],
                 theirs: dict[str, list[float]]) -> None:
    """Hold a history to TensorFlow's, as every training parity check does: ``accuracy`` and
    ``val_accuracy`` equal in every epoch (ratios of integer counts), ``loss`` and
    ``val_loss`` within 1e-6 relative (1-2 float32 ulps: the 16 -> 1 matmul and the loss
    reduction sum in another order, PARITY.md section 8)."""
    acc = max(abs(a - b) for a, b in zip(ours["val_accuracy"], theirs["val_accuracy"],
                                         strict=True))
    loss = max(abs(a - b) / b for k in ("loss", "val_loss")
               for a, b in zip(ours[k], theirs[k], strict=True))
    report.check(f"{label}: val_accuracy, every epoch", backend, acc, 0.0, "exactly equal")
    report.check(f"{label}: loss and val_loss, relative", backend, loss, 1e-6)
    assert ours["val_accuracy"] == theirs["val_accuracy"]
    assert ours["accuracy"] == theirs["accuracy"]
    assert_close(ours["loss"], theirs["loss"], rtol=1e-6, atol=0)
    assert_close(ours["val_loss"], theirs["val_loss"], rtol=1e-6, atol=0)


@pytest.fixture(scope="session")
def report() -> Report:
    return _REPORT


@pytest.fixture(scope="session", autouse=True)
def _deterministic() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(scope="session")
def tf_text() -> Any:
    """Split, vocabulary and sequence hashes recorded from TensorFlow."""
    return load_fixture("tutorial_text.json")


@pytest.fixture(scope="session")
def tf_history() -> Any:
    """Per-epoch histories of the seeded tutorial runs recorded from TensorFlow."""
    return load_fixture("tutorial_history.json")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _REPORT.checks:
        return
    from parity_tests.report import write_report

    out = Path(os.environ.get("EMBEDDINGS_PARITY_REPORT") or ".")
    tf_curve = None
    history_path = FIXTURES / "tutorial_history.json"
    if history_path.exists():
        reference = json.loads(history_path.read_text(encoding="utf-8"))
        tf_curve = reference["histories"]["0"]
        meta = reference["meta"]
    else:
        meta = {}
    device = ", ".join(DEVICES) + (f" ({torch.cuda.get_device_name(0)})"
                                   if torch.cuda.is_available() else f" ({platform.processor()})")
    write_report(out, _REPORT.checks, {"tensorflow": tf_curve, **_REPORT.curves}, meta=meta,
                 device=device)
