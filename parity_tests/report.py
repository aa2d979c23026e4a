"""Write the parity report: a table of every check and a figure of the three training curves."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Any

import torch

from embeddings.files import atomic_write_bytes, atomic_write_text

STYLES = {"tensorflow": ("TensorFlow (reference)", "k", "-", 5.0),
          "torch": ("native torch", "tab:orange", "--", 2.5),
          "keras": ("Keras 3 on torch", "tab:blue", ":", 2.0)}


def _figure(curves: dict[str, dict[str, list[float]] | None]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, history in curves.items():
        if not history:
            continue
        label, color, style, width = STYLES.get(key, (key, None, "-", 1.5))
        epochs = range(1, len(history["loss"]) + 1)
        axes[0].plot(epochs, history["loss"], style, color=color, lw=width, label=label)
        axes[1].plot(epochs, history["val_accuracy"], style, color=color, lw=width, label=label)
    axes[0].set(title="training loss, seed 0", xlabel="epoch", ylabel="loss")
    axes[1].set(title="validation accuracy, seed 0", xlabel="epoch", ylabel="val_accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:  # a session that ran no training check draws no curve
            ax.legend()
    fig.suptitle("The tutorial in TensorFlow, Keras 3 on torch and native torch")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_report(out: Path, checks: list[dict[str, Any]],
                 curves: dict[str, dict[str, list[float]] | None], *, meta: dict[str, Any],
                 device: str) -> None:
    """Write ``parity-report.md`` and ``parity-report.png`` into ``out``."""
    figure = out / "parity-report.png"
    atomic_write_bytes(figure, _figure(curves))
    tf = curves.get("tensorflow") or {}
    lines = [
        "# Parity report",
        "",
        f"Made {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {device}, "
        f"torch {torch.__version__}, Python {platform.python_version()}. TensorFlow reference: "
        f"TF {meta.get('tensorflow', '?')}, Keras {meta.get('keras', '?')}, "
        f"made {meta.get('date', '?')} on {meta.get('platform', '?')}.",
        "",
        "## Seed-exact training (the headline)",
        "",
        "`python -m embeddings.train --seed 0` against the tutorial with "
        "`keras.utils.set_random_seed(0)`: validation accuracy per epoch.",
        "",
        "| epoch | TensorFlow | " + " | ".join(k for k in curves if k != "tensorflow") + " |",
        "|---|---|" + "---|" * (len(curves) - 1),
    ]
    for e, value in enumerate(tf.get("val_accuracy", [])):
        row = [f"{curves[k]['val_accuracy'][e]:.4f}" for k in curves
               if k != "tensorflow" and curves[k]]
        lines.append(f"| {e + 1} | {value:.4f} | " + " | ".join(row) + " |")
    lines += [
        "",
        f"![loss and validation accuracy]({figure.name})",
        "",
        "## Every check",
        "",
        "`measured` is the largest deviation from TensorFlow's recorded output (absolute unless "
        "the check says relative); `bound` is what the test allows. The bounds and the reasons "
        "for them (float32 summation order) are stated in each test's docstring.",
        "",
        "| check | backend | measured | bound | ok | note |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        lines.append(f"| {c['check']} | {c['backend']} | {c['measured']:.3g} | {c['bound']:.3g} "
                     f"| {'yes' if c['ok'] else '**NO**'} | {c['note']} |")
    atomic_write_text(out / "parity-report.md", "\n".join(lines) + "\n")
