"""A run's checkpoint: the state a killed or finished run continues from (``--resume DIR``).

A run that checkpoints (``--backend torch``, ``--checkpoint-every`` other than ``never``)
makes its run directory at its first checkpoint instead of at its end.  From then on
the folder holds

* ``INCOMPLETE``: present while the run is unfinished (killed, stopped or still
  training); it says how to continue.  Tools that read runs pass such a folder over
  until its ``model.safetensors`` exists;
* ``config.json`` and ``vocabulary.json`` (the settings and the adapted vocabulary, so a
  resumed run can check it reads the same data);
* ``checkpoint/``: the latest complete checkpoint, two files:

  - ``state-<S>.safetensors`` (``S`` the global step count): every tensor of the
    training state under a flat name (``model.*``, ``optimizer.*``, ``metrics.*``,
    ``rng.*``);
  - ``checkpoint.json``: the format version, the position (``epoch`` in progress,
    0-based, and ``step``: the steps of that epoch already taken), the history so far,
    the non-tensor state, and the name and SHA-256 of its tensors file.

Every file is written atomically, the tensors first: ``checkpoint.json`` is the commit,
so a process killed at any instant leaves the previous checkpoint or the new one whole;
a tensors file no ``checkpoint.json`` names is removed at the next save.  Nothing is
unpickled: tensors are safetensors, the rest JSON.  What a checkpoint's state holds is
the backend's business (:mod:`embeddings.backends.native`); this module stores, checks
and reads it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.errors import InvalidInput
from embeddings.files import atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "checkpoint.json"
INCOMPLETE_FILE = "INCOMPLETE"
CHECKPOINT_FORMAT = 1
_TENSORS_PREFIX, _TENSORS_SUFFIX = "state-", ".safetensors"


class CheckpointError(InvalidInput):
    """A run directory holds no usable checkpoint; the message names the file at fault."""


@dataclass
class Checkpoint:
    """One saved training state.

    Args:
        epoch (int): the epoch in progress, 0-based (``epochs`` once the run is done).
        step (int): steps of that epoch already taken.
        history (dict[str, list[float]]): one value per finished epoch and key.
        tensors (dict[str, np.ndarray]): the state's arrays under flat names.
        state (dict[str, Any]): the rest of the state, JSON-ready.
    """

    epoch: int
    step: int
    history: dict[str, list[float]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def resume_command(run_dir: str | os.PathLike[str]) -> str:
    """The command line that continues the run in ``run_dir``."""
    return f"python -m embeddings.train --resume {shlex.quote(os.fspath(run_dir))}"


def mark_incomplete(run_dir: Path) -> None:
    """Write ``INCOMPLETE`` (atomically): the run has not finished, and how to go on."""
    atomic_write_text(run_dir / INCOMPLETE_FILE,
                      "This run has not finished. Continue it with:\n  "
                      f"{resume_command(run_dir)}\n")


def is_incomplete(run_dir: Path) -> bool:
    """Whether ``run_dir`` is marked unfinished."""
    return (run_dir / INCOMPLETE_FILE).exists()


def mark_complete(run_dir: Path) -> None:
    """Remove ``INCOMPLETE``: every file of the run is written."""
    (run_dir / INCOMPLETE_FILE).unlink(missing_ok=True)


def save(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` as the run's latest, atomically (see the module docstring).

    Args:
        run_dir (Path): the run directory (or its staging folder).
        checkpoint (Checkpoint): the state to save.
    """
    from safetensors.numpy import save as to_bytes

    folder = run_dir / CHECKPOINT_DIR
    steps = int(checkpoint.state.get("global_step", 0))
    name = f"{_TENSORS_PREFIX}{steps}{_TENSORS_SUFFIX}"
    data = to_bytes({k: np.ascontiguousarray(v) for k, v in checkpoint.tensors.items()},
                    metadata={"format": "embeddings-checkpoint"})
    atomic_write_bytes(folder / name, data)
    atomic_write_json(folder / STATE_FILE, {
        "format_version": CHECKPOINT_FORMAT, "epoch": checkpoint.epoch,
        "step": checkpoint.step, "history": checkpoint.history, "state": checkpoint.state,
        "tensors": {"file": name, "sha256": hashlib.sha256(data).hexdigest()},
    })
    for stale in folder.glob(f"{_TENSORS_PREFIX}*{_TENSORS_SUFFIX}"):
        if stale.name != name:
            stale.unlink(missing_ok=True)


def _fail(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: {why}. Received: a damaged or foreign checkpoint; "
                           "restore the run directory or train a new run.")


def load(run_dir: Path) -> Checkpoint:
    """The latest checkpoint of ``run_dir``, checked against its SHA-256.

    Raises:
        CheckpointError: there is no checkpoint, or it is damaged (the file is named).
    """
    import json

    from safetensors import SafetensorError
    from safetensors.numpy import load as from_bytes

    path = run_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/{STATE_FILE} is missing). "
            f"Received: --resume {run_dir}; only runs of --backend torch with checkpoints "
            "(--checkpoint-every other than never) can be resumed.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        version, tensors = raw["format_version"], raw["tensors"]
        epoch, step, history = int(raw["epoch"]), int(raw["step"]), raw["history"]
        name, digest, state = str(tensors["file"]), str(tensors["sha256"]), raw["state"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise _fail(path, f"not a checkpoint record ({err!r})") from err
    if version != CHECKPOINT_FORMAT:
        raise _fail(path, f"format_version {version!r}, and this embeddings reads "
                          f"{CHECKPOINT_FORMAT}")
    if Path(name).name != name or not name.startswith(_TENSORS_PREFIX):
        raise _fail(path, f"names the tensors file {name!r}, outside its folder")
    try:
        data = (path.parent / name).read_bytes()
    except OSError as err:
        raise _fail(path.parent / name, f"unreadable ({err.strerror})") from err
    if hashlib.sha256(data).hexdigest() != digest:
        raise _fail(path.parent / name, f"its SHA-256 differs from the one {STATE_FILE} "
                                        "records")
    try:
        arrays = from_bytes(data)
    except (SafetensorError, ValueError) as err:
        raise _fail(path.parent / name, f"not a safetensors file ({err})") from err
    return Checkpoint(epoch, step, history, dict(arrays), state)


@dataclass
class Checkpoints:
    """The checkpoints of one run: the one it resumes from, when to save, and saving.

    A backend that can resume calls :meth:`begin` once its vocabulary is adapted, starts
    from :attr:`latest` when it is set, asks :meth:`due` after each step and calls
    :meth:`save` at epoch ends and when due (and on SIGINT/SIGTERM, at the step boundary).

    Args:
        folder (Callable[[], Path]): where the run is being written now (its staging
            folder until the first save, then the run directory).
        every (int | None): save every this many steps (and at each epoch's end); ``None``
            saves only at epoch ends.
        first_save (Callable[[Path], None]): called with the folder once, before the
            first checkpoint is written: writes the run's settings and vocabulary. Default:
            nothing.
        published (Callable[[], None]): called once the first checkpoint is written, to
            move a staging folder into place. Default: nothing.
        latest (Checkpoint | None): the checkpoint to resume from. Default: ``None``.
        vocabulary (list[str] | None): the vocabulary the resumed run adapted. Default:
            ``None``.
        write (bool): write the files; ``False`` for the ranks of a data-parallel run
            other than rank 0, which take the same checkpoints without writing them.
            Default: ``True``.
    """

    folder: Callable[[], Path]
    every: int | None = None
    first_save: Callable[[Path], None] = lambda folder: None
    published: Callable[[], None] = lambda: None
    latest: Checkpoint | None = None
    vocabulary: list[str] | None = None
    write: bool = True

    def begin(self, vocabulary: Sequence[str]) -> None:
        """Record the adapted vocabulary; a resumed run must have adapted the same one.

        Raises:
            CheckpointError: the vocabulary differs from the run's (the data changed).
        """
        if self.vocabulary is not None and list(vocabulary) != self.vocabulary:
            raise CheckpointError(
                f"the data now gives another vocabulary than the one {self.folder()} was "
                f"trained with ({len(vocabulary)} tokens against {len(self.vocabulary)}, "
                "or a different order). Received: --data that changed since the run "
                "started; resume with the run's own data.")
        self.vocabulary = list(vocabulary)

    def due(self, steps_taken: int) -> bool:
        """Whether a checkpoint is due after ``steps_taken`` steps of the epoch."""
        return self.every is not None and steps_taken % self.every == 0

    def save(self, checkpoint: Checkpoint) -> None:
        """Save ``checkpoint`` as the run's latest (the first save makes the run directory)."""
        if not self.write:
            self.latest = checkpoint
            return
        folder, first = self.folder(), self.latest is None
        if first:
            self.first_save(folder)
            mark_incomplete(folder)
        save(folder, checkpoint)
        self.latest = checkpoint
        if first:
            self.published()
            log.info("checkpoint in %s; continue a stopped run with: %s", self.folder(),
                     resume_command(self.folder()))


def flatten(prefix: str, state: Mapping[str, Any], tensors: dict[str, np.ndarray]) -> Any:
    """``state`` with each array (NumPy, or anything with torch's ``detach``) moved to
    ``tensors[prefix + path]`` and replaced by ``{"tensor": name}``; mappings, lists and
    tuples are walked (keys become strings).  :func:`unflatten` inverts it."""
    def walk(value: Any, path: str) -> Any:
        if hasattr(value, "detach"):  # a torch tensor; this module imports no torch
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            tensors[path] = value
            return {"tensor": path}
        if isinstance(value, Mapping):
            return {str(k): walk(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(value)]
        return value

    return walk(dict(state), prefix)


def unflatten(value: Any, tensors: Mapping[str, np.ndarray],
              convert: Callable[[np.ndarray], Any] = lambda array: array) -> Any:
    """Inverse of :func:`flatten`: ``{"tensor": name}`` becomes ``convert(tensors[name])``.

    Raises:
        CheckpointError: a named tensor is missing.
    """
    if isinstance(value, dict):
        if set(value) == {"tensor"}:
            name = value["tensor"]
            if name not in tensors:
                raise CheckpointError(f"the checkpoint's state names the tensor {name!r}, "
                                      "which its tensors file lacks. Received: a damaged "
                                      "checkpoint; restore the run directory.")
            return convert(tensors[name])
        return {k: unflatten(v, tensors, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [unflatten(v, tensors, convert) for v in value]
    return value
