"""``python -m embeddings.runs.embedding_files RUN_DIR``: write a (staged) run's Embedding
Projector files and ``vectors.vec`` from the weights, vocabulary and settings already in it.

:func:`embeddings.runs.directory.write_run` starts it so that a large table's text
formatting runs beside the pictures, on another core; it imports no torch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from safetensors.numpy import load_file

from embeddings.runs.directory import (
    CONFIG_FILE,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    write_embedding_files,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the files into the run directory ``argv[0]``; exit status 0 when done."""
    out = Path((sys.argv[1:] if argv is None else argv)[0])
    table = load_file(out / WEIGHTS_FILE)["embedding.embeddings"]
    vocabulary = json.loads((out / VOCABULARY_FILE).read_text(encoding="utf-8"))
    config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    write_embedding_files(out, table, vocabulary, int(config.get("text", {}).get("ngrams", 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
