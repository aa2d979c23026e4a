"""Write a trained run to disk: Projector TSVs, weights, vocabulary, history.

``vectors.tsv`` and ``metadata.tsv`` follow the tutorial byte for byte
(``PARITY.md`` section 9): one line per vocabulary entry except the padding
row 0, values printed as ``str(numpy.float32)`` (the shortest decimal that
round-trips) and joined by tabs, ``\\n`` line ends, no header.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save

from embeddings.files import atomic_write_bytes, atomic_write_json, atomic_write_text

VECTORS_FILE = "vectors.tsv"
METADATA_FILE = "metadata.tsv"
WEIGHTS_FILE = "model.safetensors"
VOCABULARY_FILE = "vocabulary.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"


def write_projector_tsv(
    weights: np.ndarray | torch.Tensor, vocabulary: Sequence[str], out_dir: str | os.PathLike[str]
) -> None:
    """Write ``vectors.tsv`` and ``metadata.tsv`` for the Embedding Projector.

    Args:
        weights (np.ndarray | torch.Tensor): ``(V, D)`` embedding table.
        vocabulary (Sequence[str]): tokens in id order; row ``i`` of ``weights`` is token ``i``.
        out_dir (str | os.PathLike): folder to write into.

    Raises:
        ValueError: the table has fewer rows than the vocabulary.
    """
    table = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else weights
    table = np.asarray(table, dtype=np.float32)
    if table.ndim != 2 or table.shape[0] < len(vocabulary):
        raise ValueError(
            "weights must be a (V, D) table with a row per vocabulary entry. "
            f"Received: weights.shape={table.shape}, len(vocabulary)={len(vocabulary)}"
        )
    rows = range(1, len(vocabulary))  # the tutorial skips index 0, the padding
    vectors = "".join("\t".join(map(str, table[i])) + "\n" for i in rows)
    words = "".join(vocabulary[i] + "\n" for i in rows)
    atomic_write_text(Path(out_dir) / VECTORS_FILE, vectors)
    atomic_write_text(Path(out_dir) / METADATA_FILE, words)


def write_run(
    out_dir: str | os.PathLike[str],
    *,
    state_dict: Mapping[str, torch.Tensor],
    vocabulary: Sequence[str],
    config: Mapping[str, Any],
    history: Mapping[str, list[float]],
) -> None:
    """Write every file of a run directory except the TensorBoard logs.

    Files: ``model.safetensors`` (weights under their Keras-layout names),
    ``vocabulary.json``, ``config.json``, ``history.json``, ``vectors.tsv`` and
    ``metadata.tsv``.
    """
    out = Path(out_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(out / WEIGHTS_FILE, save(tensors, metadata={"format": "embeddings-run"}))
    atomic_write_json(out / VOCABULARY_FILE, list(vocabulary))
    atomic_write_json(out / CONFIG_FILE, dict(config))
    atomic_write_json(out / HISTORY_FILE, {k: list(v) for k, v in history.items()})
    write_projector_tsv(tensors["embedding.embeddings"], vocabulary, out)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_run`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
