"""Run directories: the format (:mod:`embeddings.runs.directory`) and the Embedding
Projector's files (:mod:`embeddings.runs.projector`)."""

from embeddings.runs.directory import (
    CONFIG_FILE,
    FILES,
    FORMAT_VERSION,
    HISTORY_FILE,
    LOGS_DIR,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    Run,
    RunExistsError,
    RunFormatError,
    check_new,
    default_path,
    load_run,
    run_config,
    staged,
    write_run,
)
from embeddings.runs.projector import METADATA_FILE, VECTORS_FILE, write_projector_tsv

__all__ = [
    "CONFIG_FILE", "FILES", "FORMAT_VERSION", "HISTORY_FILE", "LOGS_DIR", "METADATA_FILE",
    "VECTORS_FILE", "VOCABULARY_FILE", "WEIGHTS_FILE", "Run", "RunExistsError",
    "RunFormatError", "check_new", "default_path", "load_run", "run_config", "staged",
    "write_projector_tsv", "write_run",
]
