"""Run directories: the format (:mod:`embeddings.runs.directory`), the checkpoint a run
resumes from (:mod:`embeddings.runs.checkpoint`), TensorBoard's event files
(:mod:`embeddings.runs.events`), the Embedding Projector's files and ``vectors.vec``
(:mod:`embeddings.runs.projector`), and the pictures (:mod:`embeddings.runs.pictures`)."""

from embeddings.runs.checkpoint import CHECKPOINT_DIR
from embeddings.runs.directory import (
    CONFIG_FILE,
    FILES,
    FORMAT_VERSION,
    HISTORY_FILE,
    LATEST,
    LOGS_DIR,
    RUN_HELP,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    Run,
    RunExistsError,
    RunFormatError,
    check_new,
    default_path,
    latest_run,
    load_run,
    locked,
    read_config,
    run_config,
    run_flag,
    settings_of,
    staged,
    staging,
    write_run,
)
from embeddings.runs.pictures import CURVES_FILE, MAP_FILE, write_pictures
from embeddings.runs.projector import (
    EVENTS_FILE,
    METADATA_FILE,
    PROJECTOR_CONFIG_FILE,
    VEC_FILE,
    VECTORS_FILE,
    write_projector_tsv,
    write_tensorboard_projector,
    write_vec,
)

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "CURVES_FILE", "EVENTS_FILE", "FILES", "FORMAT_VERSION",
    "HISTORY_FILE", "LATEST", "RUN_HELP", "LOGS_DIR", "MAP_FILE", "METADATA_FILE",
    "PROJECTOR_CONFIG_FILE", "VEC_FILE", "VECTORS_FILE", "VOCABULARY_FILE", "WEIGHTS_FILE",
    "Run", "RunExistsError", "RunFormatError", "check_new", "default_path", "latest_run",
    "load_run", "locked", "read_config", "run_config", "run_flag", "settings_of", "staged",
    "staging", "write_pictures", "write_projector_tsv", "write_run",
    "write_tensorboard_projector", "write_vec",
]
