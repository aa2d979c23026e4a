"""The run directory: its files, its format version, how it is written and how it is read.

Every writer and reader of runs goes through this module: training, conversion from
Keras files, prediction and every later tool.

Writing is staged: :func:`staged` makes a hidden sibling folder, the caller fills it
(:func:`write_run` writes every file atomically), and on success it is renamed into
place; on any failure or interruption it is removed, and staging left by a killed
process is removed by the next run aimed at the same folder.  A run directory is never
overwritten: an existing path that is not an empty folder is refused before any work
starts and again at the rename.

Reading (:func:`load_run`) validates what it reads and names the file at fault:
``config.json`` (its format version, sections and fields), ``model.safetensors``
(names, dtype and shapes of the tutorial model's weights), ``vocabulary.json`` (a list
of strings, ``''`` and ``'[UNK]'`` first, no longer than the embedding table), and that
the three agree.  Nothing is unpickled: weights are safetensors, the rest JSON.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import weights as model_weights
from embeddings.config import RunConfig
from embeddings.errors import InvalidInput
from embeddings.files import (
    Claim,
    atomic_write_bytes,
    atomic_write_json,
    claim,
    holder_pid,
    sweep,
    try_lock,
)
from embeddings.runs.checkpoint import CHECKPOINT_DIR
from embeddings.runs.events import LOGS_DIR
from embeddings.runs.pictures import CURVES_FILE, MAP_FILE, write_pictures
from embeddings.runs.projector import (
    EVENTS_FILE,
    METADATA_FILE,
    PROJECTOR_CONFIG_FILE,
    VEC_FILE,
    VECTORS_FILE,
    value_rows,
    write_tensorboard_projector,
    write_vec,
)

log = logging.getLogger(__name__)

# Version of the layout below, written into config.json as "format_version".  Runs
# written before the field existed have the same layout and read as version 1.
FORMAT_VERSION = 1

WEIGHTS_FILE = "model.safetensors"
VOCABULARY_FILE = "vocabulary.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"

# Every entry of a run directory, with what it holds (the README's table).
FILES = {
    WEIGHTS_FILE: "weights under their native names, in Keras's layout (float32)",
    VOCABULARY_FILE: "the tokens in id order ('' is padding, '[UNK]' unknown)",
    CONFIG_FILE: "format_version, every setting, and what ran: backend, device, data "
                 "source, library versions",
    HISTORY_FILE: "per-epoch lists loss, accuracy, val_loss, val_accuracy, seconds",
    VECTORS_FILE: "Embedding Projector vectors, one line per token except padding",
    METADATA_FILE: "Embedding Projector labels, one token per line except padding",
    PROJECTOR_CONFIG_FILE: "TensorBoard's Projector config, pointing at the two TSVs",
    EVENTS_FILE: "an empty TensorBoard event file: makes the run a TensorBoard run",
    VEC_FILE: "the vectors in the word2vec/fastText text format (header N D)",
    CURVES_FILE: "loss and accuracy per epoch, training and validation (not for a "
                 "converted model, which has no history)",
    MAP_FILE: "the 300 most frequent words on two principal axes, coloured by their score",
    LOGS_DIR: "TensorBoard scalars (logs/train, logs/validation)",
    CHECKPOINT_DIR: "the latest checkpoint, which --resume DIR continues from: weights, "
                    "optimizer state, position, random states (--backend torch)",
}

PAD_TOKEN, OOV_TOKEN = "", "[UNK]"


class RunFormatError(InvalidInput):
    """A run directory, or one of its files, is missing or malformed; the message names it."""


class RunExistsError(InvalidInput):
    """The path for a new run directory is taken."""


def default_path() -> Path:
    """``runs/<timestamp>`` in the current folder."""
    return Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def check_new(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path`, after checking that a run can be created there.

    Raises:
        RunExistsError: ``path`` exists and is not an empty folder.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunExistsError(
            f"The run directory {path} already exists and is not empty. Received: "
            f"out={str(path)!r}; pass a new path (runs are never overwritten)."
        )
    return path


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


class Staging:
    """A run being written: its hidden staging folder until :meth:`publish` renames it
    into place (at the end of :func:`staging`, or earlier: a checkpointing run's first
    checkpoint), then the run directory itself."""

    def __init__(self, out: Path, claimed: Claim) -> None:
        self.out, self._claimed, self.published = out, claimed, False

    @property
    def path(self) -> Path:
        """Where the run's files go now."""
        return self.out if self.published else self._claimed.path

    def publish(self) -> None:
        """Rename the staging folder to the run directory (once; later calls do nothing).

        The folder's lock moves with it: until this process ends, ``--resume`` of the run
        by another process is refused (:func:`locked`).

        Raises:
            RunExistsError: the run directory appeared meanwhile.
        """
        if self.published:
            return
        check_new(self.out)
        if self.out.exists():
            self.out.rmdir()  # an empty folder, checked just above
        os.replace(self._claimed.path, self.out)
        self.published = True


@contextlib.contextmanager
def staging(out: str | os.PathLike[str]) -> Iterator[Staging]:
    """A hidden folder beside ``out`` to fill, renamed to ``out`` when the block succeeds
    (or earlier, by :meth:`Staging.publish`).

    The folder is claimed (:func:`embeddings.files.claim`): staging left beside ``out`` by
    a killed run is removed first, and a run that another live process is already staging
    for ``out`` is refused before the block starts, so two runs aimed at one ``--out``
    never both do the work.  On any failure or interruption an unpublished folder is
    removed; a published one stays (it is a resumable run).

    Args:
        out (str | os.PathLike): the run directory to create.

    Yields:
        Staging: the run being written.

    Raises:
        RunExistsError: ``out`` is taken, or being written by another process, before
            the block or when it ends.
    """
    out = check_new(out)
    prefix = _staging_prefix(out)
    sweep(out.parent, prefix)
    claimed = claim(out.parent, prefix)
    try:
        earlier = [p for p in sweep(out.parent, prefix) if p.name < claimed.path.name]
        if earlier:
            raise RunExistsError(
                f"Another process (pid {holder_pid(earlier[0])}) is already writing a run to "
                f"{out}. Received: out={str(out)!r}; wait for it to finish or pass another "
                "--out."
            )
        stage = Staging(out, claimed)
        yield stage
        stage.publish()
    finally:
        claimed.release()


@contextlib.contextmanager
def staged(out: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`staging` for a run written in one go: yields the staging folder's path."""
    with staging(out) as stage:
        yield stage.path


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block: the one process that may write it.

    Raises:
        RunExistsError: another live process holds it (a run still training there).
    """
    fd = try_lock(run_dir)
    if fd is None:
        raise RunExistsError(
            f"Another process is still training the run in {run_dir}. Received: "
            f"--resume {run_dir}; wait for it to stop (or stop it: it saves a checkpoint) "
            "and resume then.")
    try:
        yield
    finally:
        os.close(fd)


def run_config(config: RunConfig, run: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``config.json``: the format version, every setting, then ``run``
    (what ran: backend, device, data source, versions, ...)."""
    return {"format_version": FORMAT_VERSION, **config.to_dict(), "run": dict(run)}


def write_run(out_dir: str | os.PathLike[str], *, weights: Mapping[str, Any],
              vocabulary: Sequence[str], config: Mapping[str, Any],
              history: Mapping[str, Sequence[float]]) -> None:
    """Write every file of a run directory except the TensorBoard logs, each atomically.

    Args:
        out_dir (str | os.PathLike): the (staging) folder.
        weights (Mapping[str, Any]): arrays (or tensors) under the native names.
        vocabulary (Sequence[str]): tokens in id order.
        config (Mapping[str, Any]): from :func:`run_config`.
        history (Mapping[str, Sequence[float]]): per-epoch values (``{}`` for none).

    Raises:
        ValueError: the weights are not the tutorial model's, or the vocabulary does not
            fit the table.
    """
    from safetensors.numpy import save

    out = Path(out_dir)
    arrays = {k: np.ascontiguousarray(_numpy(v), dtype=np.float32) for k, v in weights.items()}
    rows, _, _ = model_weights.dims(arrays, "the weights to write")
    _check_vocabulary(list(vocabulary), rows, "the vocabulary to write")
    atomic_write_bytes(out / WEIGHTS_FILE, save(arrays, metadata={"format": "embeddings-run"}))
    atomic_write_json(out / VOCABULARY_FILE, list(vocabulary))
    atomic_write_json(out / CONFIG_FILE, dict(config))
    atomic_write_json(out / HISTORY_FILE, {k: list(v) for k, v in history.items()})
    table = arrays["embedding.embeddings"]
    ngrams = int(config.get("text", {}).get("ngrams", 1))
    if ngrams > 1:
        words = len(vec_rows(vocabulary, ngrams)) - 1
        log.info("%s holds the %d single-word tokens; the %d n-grams are in %s", VEC_FILE,
                 words, len(vocabulary) - 1 - words, VECTORS_FILE)
    worker = _start_embedding_files(out) if len(vocabulary) >= PARALLEL_ROWS else None
    try:
        write_pictures(out, weights=arrays, vocabulary=vocabulary, config=dict(config),
                       history=history)
    except BaseException:
        if worker is not None:
            worker.kill()
            worker.wait()
        raise
    if worker is None or not _finished(worker):
        write_embedding_files(out, table, vocabulary, ngrams)


def vec_rows(vocabulary: Sequence[str], ngrams: int) -> list[int]:
    """The rows ``vectors.vec`` holds: every one, or with ``ngrams > 1`` the padding and the
    single words (Keras joins n-grams with a space, the format's field separator)."""
    if ngrams == 1:
        return list(range(len(vocabulary)))
    return [0] + [i for i in range(1, len(vocabulary)) if " " not in vocabulary[i]]


def write_embedding_files(out_dir: str | os.PathLike[str], table: np.ndarray,
                          vocabulary: Sequence[str], ngrams: int) -> None:
    """Write a run's Embedding Projector files (:func:`write_tensorboard_projector`) and
    ``vectors.vec`` (:func:`write_vec`, of :func:`vec_rows`), each atomically."""
    out = Path(out_dir)
    values = value_rows(table)  # printed once for both files
    write_tensorboard_projector(out, table, vocabulary, values)
    words = vec_rows(vocabulary, ngrams)
    try:
        write_vec(out, table[words], [vocabulary[i] for i in words], [values[i] for i in words])
    except ValueError as err:  # a converted vocabulary with a token the format cannot hold
        log.warning("%s is not written: %s", VEC_FILE, err)


# From this many tokens, a second process writes the Projector files and vectors.vec
# (seconds of string formatting for a large table: 1.9 s at 200,000 x 16) while this one
# draws the pictures; it starts in about 0.2 s, as it imports no torch.
PARALLEL_ROWS = 50_000


def _start_embedding_files(out: Path) -> subprocess.Popen[bytes] | None:
    """``python -m embeddings.runs.embedding_files OUT`` on the files already written in
    ``out``, or ``None`` when no process can be started (the caller then writes them)."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "embeddings.runs.embedding_files", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path})
    except OSError as err:
        log.debug("the Projector files are written in this process: %s", err)
        return None


def _finished(worker: subprocess.Popen[bytes]) -> bool:
    """Wait for ``worker``; whether it wrote every file.  A failure is logged, and the
    caller writes the files itself (so that a real error surfaces with its traceback)."""
    _, err = worker.communicate()
    if worker.returncode == 0:
        return True
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    log.warning("writing the Projector files in a second process failed (exit %s: %s); "
                "writing them here", worker.returncode, tail[0])
    return False


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _check_vocabulary(tokens: list[Any], rows: int, where: str) -> None:
    if not all(isinstance(t, str) for t in tokens):
        raise RunFormatError(f"{where} must be a list of strings. Received: "
                             f"{[type(t).__name__ for t in tokens if not isinstance(t, str)][:3]}")
    if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
        raise RunFormatError(f"{where} must start with '' (padding) and '[UNK]'. "
                             f"Received: {tokens[:2]}")
    if len(tokens) > rows:
        raise RunFormatError(
            f"{where} has {len(tokens)} tokens but the embedding table only {rows} rows. "
            "Received: mismatched vocabulary and weights; use the run's own vocabulary."
        )


@dataclass
class Run:
    """A loaded run directory: validated weights (NumPy, native names), vocabulary, config."""

    path: Path
    weights: dict[str, np.ndarray]
    vocabulary: list[str]
    config: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def settings(self) -> RunConfig:
        """The run's settings as a :class:`~embeddings.config.RunConfig`."""
        return settings_of(self.config)

    @property
    def standardize(self) -> str | None:
        """The vectorizer's standardization: the run's, ``"tutorial"`` when it names none
        (``None`` means no standardization, as in Keras)."""
        value = self.config.get("run", {}).get("standardize", "tutorial")
        return None if value is None else str(value)

    def vectorizer(self) -> Any:
        """The run's :class:`~embeddings.text.TextVectorization`, ready to vectorize."""
        from embeddings.text import TextVectorization

        text = self.settings.text
        return TextVectorization(max_tokens=None, standardize=self.standardize,
                                 output_sequence_length=text.sequence_length,
                                 ngrams=text.ngram_widths, vocabulary=self.vocabulary)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFormatError(f"{path} is not readable JSON: {err}. Received: a damaged or "
                             "foreign file; use a run written by embeddings.") from err


def settings_of(config: Mapping[str, Any]) -> RunConfig:
    """The settings recorded in a ``config.json`` (``config``, as read)."""
    return RunConfig.from_dict({k: v for k, v in config.items()
                                if k not in ("format_version", "run")})


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` at ``path``, checked: its format version, sections and fields.

    Raises:
        RunFormatError: the file is unreadable or malformed (the message names it).
    """
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise RunFormatError(f"{path} must hold a JSON object. Received: {type(raw).__name__}")
    version = raw.get("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise RunFormatError(
            f"{path} has format_version {version!r}; this embeddings reads versions 1 to "
            f"{FORMAT_VERSION}. Received: format_version={version!r}; upgrade embeddings to "
            "read runs written by a newer one."
        )
    try:
        settings_of(raw)
    except (TypeError, ValueError) as err:
        raise RunFormatError(f"{path}: {err}") from err
    if not isinstance(raw.get("run", {}), dict):
        raise RunFormatError(f"{path}: 'run' must be an object. Received: {raw['run']!r}")
    return raw


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise RunFormatError(f"{path} is not a readable safetensors file: {err}") from err
    try:
        model_weights.dims(arrays, str(path))
    except ValueError as err:
        raise RunFormatError(str(err)) from err
    wrong = {k: str(a.dtype) for k, a in arrays.items() if a.dtype != np.float32}
    if wrong:
        raise RunFormatError(f"{path}: weights must be float32. Received: {wrong}")
    return arrays


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read and validate a run directory written by training or conversion.

    Raises:
        RunFormatError: the folder is missing a file, or a file is malformed or disagrees
            with the others (the message names the file).
    """
    run_dir = Path(run_dir)
    for name in (WEIGHTS_FILE, VOCABULARY_FILE, CONFIG_FILE):
        if not (run_dir / name).is_file():
            why = f"{name} is missing" if run_dir.is_dir() else "the folder does not exist"
            raise RunFormatError(
                f"{run_dir} is not a run directory: {why}. Received: "
                f"run={str(run_dir)!r}; pass a folder written by `python -m embeddings.train` "
                "or `python -m embeddings.convert`."
            )
    config = read_config(run_dir / CONFIG_FILE)
    arrays = _read_weights(run_dir / WEIGHTS_FILE)
    vocabulary = _read_json(run_dir / VOCABULARY_FILE)
    if not isinstance(vocabulary, list):
        raise RunFormatError(f"{run_dir / VOCABULARY_FILE} must hold a JSON list of tokens. "
                             f"Received: {type(vocabulary).__name__}")
    rows, dim, hidden = model_weights.dims(arrays, str(run_dir / WEIGHTS_FILE))
    _check_vocabulary(vocabulary, rows, str(run_dir / VOCABULARY_FILE))
    recorded = config.get("run", {}).get("vocabulary_size")
    if recorded is not None and recorded != len(vocabulary):
        raise RunFormatError(
            f"{run_dir / VOCABULARY_FILE} holds {len(vocabulary)} tokens but {CONFIG_FILE} "
            f"records vocabulary_size={recorded!r}: every token after a missing or extra one "
            "would get the wrong embedding row. Restore the run's own vocabulary.json."
        )
    loaded = Run(run_dir, arrays, vocabulary, config)
    settings = loaded.settings
    sizes = {"text.vocab_size": (settings.text.vocab_size, rows),
             "model.embedding_dim": (settings.model.embedding_dim, dim),
             "model.hidden_units": (settings.model.hidden_units, hidden)}
    wrong = {k: v for k, v in sizes.items() if v[0] != v[1]}
    if wrong:
        raise RunFormatError(
            f"{run_dir / CONFIG_FILE} disagrees with {WEIGHTS_FILE}. Received: "
            + ", ".join(f"{k}={a} but the weights have {b}" for k, (a, b) in wrong.items())
            + "; the files come from different runs."
        )
    history_path = run_dir / HISTORY_FILE
    loaded.history = _read_json(history_path) if history_path.is_file() else {}
    return loaded


def latest_run(root: str | os.PathLike[str] = "runs") -> Path:
    """The newest run directory in ``root``: what ``--run latest`` loads.

    A run directory here is a folder of ``root`` that holds ``model.safetensors``,
    ``vocabulary.json`` and ``config.json``; hidden folders (staging, ``.NAME.partial-*``)
    and anything else are passed over.  The newest is the one whose ``config.json`` was
    written last (its modification time, so custom ``--out`` names count too); ties go to
    the greater name.  It is not validated here: :func:`load_run` names any fault.

    Args:
        root (str | os.PathLike): the folder of runs. Default: ``"runs"`` (in the current
            folder, where training writes ``runs/<timestamp>``).

    Returns:
        Path: ``root / name``.

    Raises:
        MissingFile: ``root`` is not a folder, or holds no run directory.
    """
    from embeddings.errors import MissingFile

    root = Path(root)
    fix = ("train one with `python -m embeddings.train` (it writes runs/<timestamp>), run "
           "from the folder that holds runs/, or pass --run DIR")
    if not root.is_dir():
        raise MissingFile(f"--run latest looks for runs in {root.absolute()}, and there is no "
                          f"such folder. Received: run='latest'; {fix}.")
    found: list[tuple[int, str, Path]] = []
    for entry in root.iterdir():
        names = (WEIGHTS_FILE, VOCABULARY_FILE, CONFIG_FILE)
        if entry.name.startswith(".") or not all((entry / n).is_file() for n in names):
            continue
        with contextlib.suppress(OSError):  # removed meanwhile
            found.append(((entry / CONFIG_FILE).stat().st_mtime_ns, entry.name, entry))
    if not found:
        raise MissingFile(f"--run latest found no run directory in {root.absolute()}. "
                          f"Received: run='latest'; {fix}.")
    return max(found)[2]


LATEST = "latest"  # the value of --run that means latest_run()
RUN_HELP = ("run directory to load, or 'latest': the newest run under runs/ (by when its "
            "config.json was written)")


def run_flag(value: str | os.PathLike[str]) -> Path:
    """The folder a tool's ``--run VALUE`` names: ``latest`` is :func:`latest_run` (said
    on stderr, so the user sees which run answered), anything else the path itself.

    Raises:
        MissingFile: ``latest`` with no run under ``runs/``.
    """
    if os.fspath(value) != LATEST:
        return Path(value)
    path = latest_run()
    print(f"note: --run latest is {path}", file=sys.stderr)
    return path
