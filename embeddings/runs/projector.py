"""The Embedding Projector's files, ``vectors.tsv`` and ``metadata.tsv``, as the tutorial
writes them.

They follow the tutorial byte for byte (``PARITY.md`` section 9): one line per
vocabulary entry except the padding row 0, values printed as ``str(numpy.float32)``
(the shortest decimal that round-trips) and joined by tabs, ``\\n`` line ends, no header.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.files import atomic_write_text

VECTORS_FILE = "vectors.tsv"
METADATA_FILE = "metadata.tsv"


def write_projector_tsv(weights: Any, vocabulary: Sequence[str],
                        out_dir: str | os.PathLike[str]) -> None:
    """Write ``vectors.tsv`` and ``metadata.tsv`` for the Embedding Projector.

    Args:
        weights (np.ndarray | torch.Tensor): ``(V, D)`` embedding table.
        vocabulary (Sequence[str]): tokens in id order; row ``i`` of ``weights`` is token ``i``.
        out_dir (str | os.PathLike): folder to write into.

    Raises:
        ValueError: the table has fewer rows than the vocabulary.
    """
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().cpu().numpy()
    table = np.asarray(weights, dtype=np.float32)
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
