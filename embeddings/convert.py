"""Move the tutorial model between TensorFlow/Keras files and run directories, exactly.

* :func:`keras_to_run`: a ``.keras`` file (with or without ``TextVectorization``
  inside) or a ``.weights.h5`` file, plus a vocabulary where the file holds none,
  becomes a run directory (``model.safetensors``, ``vocabulary.json``,
  ``config.json``, the Projector TSVs).
* :func:`run_to_keras`: a run directory becomes a ``.keras`` file of stock Keras
  layers that any Keras backend, TensorFlow included, loads; its vocabulary goes
  beside it as ``<name>.vocabulary.txt`` (Keras on torch cannot hold a
  ``TextVectorization``).

Arrays are copied bit for bit.  Reading never unpickles and never runs code
from the file: the archive's JSON config and HDF5 weights are parsed directly.

Command line::

    python -m embeddings.convert model.keras runs/converted [--vocabulary vocab.txt]
    python -m embeddings.convert runs/20261124-101500 exported.keras
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import __version__, runs, weights
from embeddings.config import ModelConfig, RunConfig, TextConfig
from embeddings.errors import InvalidInput, MissingExtra, MissingFile, cli
from embeddings.files import atomic_write_text
from embeddings.text import TextVectorization

log = logging.getLogger(__name__)


@dataclass
class KerasModelFile:
    """What a Keras file holds of the tutorial model."""

    arrays: dict[str, np.ndarray]  # native names, Keras layout
    vocabulary: list[str] | None  # from a TextVectorization inside, if any
    sequence_length: int | None
    standardize: str | None  # "tutorial" for a custom function, else Keras's built-in name


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise MissingExtra(
            "Reading Keras files needs h5py: pip install 'embeddings[keras]'"
        ) from err
    return h5py


def _layer_vars(group: Any) -> list[np.ndarray]:
    variables = group.get("vars")
    if variables is None:
        return []
    return [np.array(variables[k]) for k in sorted(variables, key=int)]


def _roles_from_config(config: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Map the weight table's layers (embedding, dense, dense_1) to the model's layer names;
    find its vectorizer."""
    layers = config.get("config", {}).get("layers", [])
    by_class: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        by_class.setdefault(layer["class_name"], []).append(layer["config"])
    embeddings = by_class.get("Embedding", []) + by_class.get("OccurrenceEmbedding", [])
    dense = by_class.get("Dense", [])
    if len(embeddings) != 1 or len(dense) != 2:
        found = [layer["class_name"] for layer in layers]
        raise InvalidInput(
            "The file is not the tutorial model (one Embedding, then two Dense layers). "
            f"Received: layers={found}"
        )
    roles = dict(zip(weights.LAYERS, [embeddings[0]["name"], dense[0]["name"],
                                      dense[1]["name"]], strict=True))
    vectorizers = by_class.get("TextVectorization", [])
    return roles, (vectorizers[0] if vectorizers else None)


def _input_length(config: dict[str, Any]) -> int | None:
    """The sequence length of an integer-input model, from its ``InputLayer``."""
    for layer in config.get("config", {}).get("layers", []):
        if layer["class_name"] == "InputLayer":
            shape = layer["config"].get("batch_shape") or [None, None]
            return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    return None


def _lines(data: bytes) -> list[str]:
    """Tokens one per line; '' may only be the first, so a final empty line is an end."""
    lines = data.split(b"\n")
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    return [t.decode("utf-8", "surrogateescape") for t in lines]


def _roles_from_groups(groups: dict[str, list[np.ndarray]]) -> dict[str, str]:
    """Without a config (``.weights.h5``): the embedding has one 2-D variable, a Dense two."""
    tables = [n for n, v in groups.items() if len(v) == 1 and v[0].ndim == 2]
    dense = [n for n, v in groups.items() if len(v) == 2 and v[0].ndim == 2 and v[1].ndim == 1]
    if len(tables) != 1 or len(dense) != 2:
        raise InvalidInput(
            "The weights file is not the tutorial model's (one embedding table, two Dense "
            f"layers). Received: layers={sorted(groups)}"
        )
    last = [n for n in dense if groups[n][0].shape[1] == 1]
    if len(last) != 1:
        raise InvalidInput(f"Cannot tell the output Dense layer apart. Received: layers={dense}")
    first = next(n for n in dense if n != last[0])
    return dict(zip(weights.LAYERS, [tables[0], first, last[0]], strict=True))


def read_keras(path: str | os.PathLike[str]) -> KerasModelFile:
    """Read the tutorial model from a ``.keras`` or ``.weights.h5`` file.

    Raises:
        MissingFile: no such file.
        InvalidInput: the file is not a Keras file of the tutorial model.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"No Keras file at {path}. Received: path={str(path)!r}; pass the "
                          "path of a .keras or .weights.h5 file.")
    h5py = _h5py()
    config: dict[str, Any] | None = None
    assets: dict[str, bytes] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if not {"config.json", "model.weights.h5"} <= names:
                raise InvalidInput(f"{path} is a zip but not a .keras archive (no config.json and "
                                 "model.weights.h5 inside).")
            config = json.loads(archive.read("config.json"))
            weights_bytes = archive.read("model.weights.h5")
            assets = {n: archive.read(n) for n in names if n.startswith("assets/")}
        handle = h5py.File(io.BytesIO(weights_bytes), "r")
    else:
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise InvalidInput(f"{path} is neither a .keras archive nor an HDF5 weights file: "
                             f"{err}") from err
    with handle:
        layers = handle.get("layers")
        if layers is None:
            raise InvalidInput(f"{path} holds no Keras layer weights (no 'layers' group).")
        groups = {name: _layer_vars(layers[name]) for name in layers}
    vectorizer = None
    if config is not None:
        roles, vectorizer = _roles_from_config(config)
    else:
        roles = _roles_from_groups(groups)
    arrays = {}
    for w in weights.WEIGHTS:
        found = groups.get(roles[w.layer], [])
        if len(found) <= w.slot:
            raise InvalidInput(f"{path}: layer {roles[w.layer]!r} has no variable {w.slot}.")
        arrays[w.native] = found[w.slot]
    vocabulary = None
    sequence_length = _input_length(config) if config is not None else None
    standardize: str | None = "tutorial"
    if vectorizer is not None:
        key = f"assets/layers/{vectorizer['name']}/vocabulary.txt"
        if key not in assets:
            raise InvalidInput(
                f"{path}: the TextVectorization layer's vocabulary ({key}) is missing."
            )
        vocabulary = _lines(assets[key])
        sequence_length = vectorizer.get("output_sequence_length")
        spec = vectorizer.get("standardize")
        standardize = spec if isinstance(spec, str) or spec is None else "tutorial"
        if not isinstance(spec, str) and spec is not None:
            log.info("%s: custom standardize %s is taken to be the tutorial's", path,
                     spec.get("config"))
    return KerasModelFile(arrays, vocabulary, sequence_length, standardize)


def read_vocabulary(path: str | os.PathLike[str]) -> list[str]:
    """A vocabulary from ``vocabulary.json`` (a JSON list) or a text file, one token a line.

    Raises:
        MissingFile: no such file.
        InvalidInput: the file is not a list of tokens.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"No vocabulary file at {path}. Received: vocabulary={str(path)!r}")
    if path.suffix == ".json":
        try:
            tokens = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidInput(f"{path} is not readable JSON: {err}") from err
        if not isinstance(tokens, list):
            raise InvalidInput(f"{path} must hold a JSON list of tokens. "
                               f"Received: {type(tokens).__name__}")
        return [str(t) for t in tokens]
    return _lines(path.read_bytes())


def keras_to_run(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    vocabulary: str | os.PathLike[str] | None = None,
    sequence_length: int | None = None,
) -> Path:
    """Convert a Keras file of the tutorial model into a run directory (written staged, so
    a failed conversion leaves nothing behind; an existing run is never overwritten).

    Args:
        source (str | os.PathLike): ``.keras`` or ``.weights.h5`` file.
        out_dir (str | os.PathLike): run directory to write.
        vocabulary (str | os.PathLike | None): vocabulary file, needed when the Keras
            file has no ``TextVectorization``; beside a ``.keras`` written by
            :func:`run_to_keras` it is found automatically. Default: ``None``.
        sequence_length (int | None): tokens per review when the file does not say.
            Default: ``None`` (the file's, else 100).

    Returns:
        Path: ``out_dir``.

    Raises:
        InvalidInput: no vocabulary can be found, or it does not fit the embedding table.
        RunExistsError: ``out_dir`` exists and is not empty.
    """
    out = runs.check_new(out_dir)
    model = read_keras(source)
    sidecar = _sidecar(Path(source))
    if vocabulary is not None:
        tokens = read_vocabulary(vocabulary)
    elif model.vocabulary is not None:
        tokens = model.vocabulary
    elif sidecar.is_file():
        tokens = read_vocabulary(sidecar)
    else:
        raise InvalidInput(
            f"{source} holds no TextVectorization, so its vocabulary is needed: pass "
            "--vocabulary FILE (vocabulary.json, or one token per line, '' and [UNK] first)."
        )
    try:  # Keras's rules: '' and '[UNK]' first (added when absent), no repeated token
        tokens = TextVectorization(vocabulary=tokens).get_vocabulary()
    except ValueError as err:
        raise InvalidInput(f"The vocabulary of {source}: {err}") from err
    vocab_size, dim, hidden = weights.dims(model.arrays, str(source))
    length = sequence_length or model.sequence_length or TextConfig().sequence_length
    settings = RunConfig(text=TextConfig(vocab_size=vocab_size, sequence_length=length),
                         model=ModelConfig(embedding_dim=dim, hidden_units=hidden))
    record = {"converted_from": str(source), "standardize": model.standardize,
              "vocabulary_size": len(tokens), "versions": {"embeddings": __version__}}
    with runs.staged(out) as staging:
        runs.write_run(staging, weights=model.arrays, vocabulary=tokens,
                       config=runs.run_config(settings, record), history={})
    return out


def _sidecar(keras_file: Path) -> Path:
    return keras_file.with_name(keras_file.name.split(".")[0] + ".vocabulary.txt")


def run_to_keras(run_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Write a run's model as a ``.keras`` file of stock Keras layers, vocabulary beside it.

    Returns:
        Path: the ``.keras`` file.

    Raises:
        InvalidInput: ``path`` does not end in ``.keras``.
        RunFormatError: ``run_dir`` is not a valid run directory.
    """
    from embeddings import keras_model

    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidInput(f"The output must end in .keras. Received: path={str(path)!r}")
    run = runs.load_run(run_dir)
    settings = run.settings
    model = keras_model.build_model(settings.text.vocab_size, settings.model.embedding_dim,
                                    settings.model.hidden_units,
                                    sequence_length=settings.text.sequence_length,
                                    exact_embedding=False, compile=False)
    keras_model.set_native_weights(model, run.weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        model.save(staged)
        os.replace(staged, path)
    atomic_write_text(_sidecar(path), "".join(t + "\n" for t in run.vocabulary))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m embeddings.convert SRC DST``: the direction follows from SRC and DST."""
    parser = argparse.ArgumentParser(prog="python -m embeddings.convert",
                                     description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("source", help=".keras / .weights.h5 file, or a run directory")
    parser.add_argument("dest", help="run directory to create, or a .keras file to write")
    parser.add_argument("--vocabulary", help="vocabulary file for a Keras file without one")
    parser.add_argument("--sequence-length", type=int, help="tokens per review (default: "
                        "the file's, else 100)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        if Path(args.source).is_dir():
            written = run_to_keras(args.source, args.dest)
        else:
            written = keras_to_run(args.source, args.dest, vocabulary=args.vocabulary,
                                   sequence_length=args.sequence_length)
        print(f"Wrote {written}")
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
