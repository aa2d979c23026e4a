"""Move the tutorial model between TensorFlow/Keras files and run directories, exactly.

* :func:`keras_to_run`: a ``.keras`` file (with or without ``TextVectorization``
  inside) or a ``.weights.h5`` file, plus a vocabulary where the file holds none,
  becomes a run directory (``model.safetensors``, ``vocabulary.json``,
  ``config.json``, the Projector TSVs).
* :func:`run_to_keras`: a run directory becomes a ``.keras`` file of stock Keras
  layers that any Keras backend, TensorFlow included, loads; its vocabulary goes
  beside it as ``<name>.vocabulary.txt`` (``model.v1.keras`` ->
  ``model.v1.vocabulary.txt``; Keras on torch cannot hold a ``TextVectorization``).
  An existing ``.keras`` or vocabulary file is never overwritten.

Arrays are copied bit for bit, and the settings that change a run's scores travel
with them: ``--mask-padding`` as the embedding's ``mask_zero``, and ``--ngrams N`` as
the ``TextVectorization``'s ``ngrams`` or, in a file without one (what
:func:`run_to_keras` writes), as its vocabulary (:func:`vocabulary_ngrams`).  Reading
never unpickles and never runs code from the file, and trusts nothing it declares
(:mod:`embeddings.keras_file` lists what it refuses).  A failed or interrupted
conversion leaves nothing behind, in either direction; one that was killed leaves a
hidden staging folder the next one removes.

Command line::

    python -m embeddings.convert model.keras runs/converted [--vocabulary vocab.txt] [--ngrams N]
    python -m embeddings.convert runs/20261124-101500 exported.keras
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from embeddings import __version__, runs, weights
from embeddings.config import ModelConfig, RunConfig, TextConfig
from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.files import atomic_write_text, claim, sweep
from embeddings.keras_file import (
    KerasModelFile,
    checked_ngrams,
    checked_sequence_length,
    read_keras,
    read_vocabulary,
)
from embeddings.text import TextVectorization

log = logging.getLogger(__name__)


def vocabulary_ngrams(tokens: Iterable[str]) -> int:
    """The ``--ngrams`` a vocabulary was made with, read from its tokens.

    Keras joins the words of an n-gram with one space (``tf.strings.ngrams(...,
    separator=" ")``) and the tutorial's whitespace split never leaves a space inside a
    word, so a token of k space-separated words is a k-gram: N is the largest k (empty
    pieces, as in ``" "``, are no words), 1 when no token holds a space.  A vocabulary
    whose longest n-grams were all too rare to make it in reads as a smaller N.

    Args:
        tokens (Iterable[str]): the vocabulary.

    Returns:
        int: N, at least 1.

    >>> vocabulary_ngrams(["", "[UNK]", "the", "of the", "a"])
    2
    """
    return max((sum(1 for word in t.split(" ") if word) for t in tokens), default=1) or 1


def _ngrams(model: KerasModelFile, tokens: list[str], source: Path, given: int | None) -> int:
    """The run's ``ngrams``: ``given`` (``--ngrams``), else the file's ``TextVectorization``'s,
    else :func:`vocabulary_ngrams` of ``tokens`` (logged).

    Raises:
        InvalidInput: the inferred N is outside :class:`TextConfig`'s bounds.
    """
    found = vocabulary_ngrams(tokens)
    if given is not None:
        ngrams = given
    elif model.ngrams is not None:
        ngrams = model.ngrams
    else:
        ngrams = checked_ngrams(found, f"{source}: the n-grams read from its vocabulary "
                                       "(pass --ngrams N to set them)")
        log.info("%s: ngrams=%d, read from its vocabulary (its longest token has %d "
                 "space-separated words); pass --ngrams N to set it", source, ngrams, found)
    if found > ngrams:
        log.warning("%s: the vocabulary holds tokens of %d words, but ngrams=%d never makes "
                    "them", source, found, ngrams)
    return ngrams


def _vocabulary(model: KerasModelFile, source: Path,
                vocabulary: str | os.PathLike[str] | None) -> list[str]:
    """The tokens for a converted model: ``vocabulary`` if given, else the file's own, else
    the sidecar beside it; checked by Keras's rules ('' and '[UNK]' first, no repeats).

    Raises:
        InvalidInput: none is found, or it breaks the rules.
    """
    sidecar = _sidecar(source)
    if vocabulary is not None:
        tokens = read_vocabulary(vocabulary)
    elif model.vocabulary is not None:
        tokens = model.vocabulary
    elif sidecar.is_file():
        tokens = read_vocabulary(sidecar)
    else:
        raise InvalidInput(
            f"{source} holds no TextVectorization and no {sidecar.name} is beside it, so its "
            "vocabulary is needed: pass --vocabulary FILE (vocabulary.json, or one token per "
            "line, '' and [UNK] first)."
        )
    try:  # Keras's rules: '' and '[UNK]' first (added when absent), no repeated token
        return TextVectorization(vocabulary=tokens).get_vocabulary()
    except ValueError as err:
        raise InvalidInput(f"The vocabulary of {source}: {err}") from err


def keras_to_run(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    vocabulary: str | os.PathLike[str] | None = None,
    sequence_length: int | None = None,
    ngrams: int | None = None,
) -> Path:
    """Convert a Keras file of the tutorial model into a run directory (written staged, so
    a failed conversion leaves nothing behind; an existing run is never overwritten).

    The run's ``model.mask_padding`` is the embedding's ``mask_zero`` (``False`` for a
    ``.weights.h5``, which holds no config), and its ``text.ngrams`` the
    ``TextVectorization``'s ``ngrams``, or in a file without one what
    :func:`vocabulary_ngrams` reads from the vocabulary.

    Args:
        source (str | os.PathLike): ``.keras`` or ``.weights.h5`` file.
        out_dir (str | os.PathLike): run directory to write.
        vocabulary (str | os.PathLike | None): vocabulary file, needed when the Keras
            file has no ``TextVectorization``; beside a ``.keras`` written by
            :func:`run_to_keras` it is found automatically. Default: ``None``.
        sequence_length (int | None): tokens per review when the file does not say.
            Default: ``None`` (the file's, else 100).
        ngrams (int | None): the N of the run's n-grams ``(1, ..., N)`` (``--ngrams``).
            Default: ``None`` (the file's ``TextVectorization``'s, else read from the
            vocabulary).

    Returns:
        Path: ``out_dir``.

    Raises:
        InvalidInput: the file breaks a rule of :func:`read_keras`, no vocabulary can be
            found, it does not fit the embedding table, or ``sequence_length`` or
            ``ngrams`` (given or inferred) is out of bounds.
        RunExistsError: ``out_dir`` exists and is not empty.
    """
    out = runs.check_new(out_dir)
    if sequence_length is not None:
        sequence_length = checked_sequence_length(sequence_length, "--sequence-length")
    if ngrams is not None:
        ngrams = checked_ngrams(ngrams, "--ngrams")
    source = Path(source)
    model = read_keras(source)
    tokens = _vocabulary(model, source, vocabulary)
    vocab_size, dim, hidden = weights.dims(model.arrays, str(source))
    length = sequence_length or model.sequence_length or TextConfig().sequence_length
    ngrams = _ngrams(model, tokens, source, ngrams)
    try:
        settings = RunConfig(text=TextConfig(vocab_size=vocab_size, sequence_length=length,
                                             ngrams=ngrams),
                             model=ModelConfig(embedding_dim=dim, hidden_units=hidden,
                                               mask_padding=model.mask_zero))
    except ValueError as err:
        raise InvalidInput(f"{source}: {err}") from err
    record = {"converted_from": str(source), "standardize": model.standardize,
              "vocabulary_size": len(tokens), "versions": {"embeddings": __version__}}
    with runs.staged(out) as staging:
        runs.write_run(staging, weights=model.arrays, vocabulary=tokens,
                       config=runs.run_config(settings, record), history={})
    if model.vocabulary is not None and model.standardize == "tutorial":
        log.info("%s: its custom standardize function is taken to be the tutorial's", source)
    return out


def _sidecar(model_file: Path) -> Path:
    """``X.vocabulary.txt`` beside ``X.keras`` or ``X.weights.h5``: only that final suffix
    is replaced (``model.v1.keras`` -> ``model.v1.vocabulary.txt``)."""
    name = model_file.name
    for suffix in (".keras", ".weights.h5"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
            break
    return model_file.with_name(name + ".vocabulary.txt")


def _refuse_existing(path: Path) -> None:
    """Refuse to write over ``path`` (a file, folder or link, even a dangling one).

    Raises:
        InvalidInput: ``path`` exists.
    """
    if os.path.lexists(path):
        raise InvalidInput(f"{path} already exists; an export never overwrites a file. "
                           f"Received: path={str(path)!r}; remove it or choose another path.")


def _place(staged: Path, target: Path) -> None:
    """Move a finished file into place unless ``target`` appeared meanwhile: a hard link
    fails on an existing name, where a rename would replace it.

    Raises:
        InvalidInput: ``target`` exists.
    """
    try:
        os.link(staged, target)
    except FileExistsError:
        _refuse_existing(target)
        raise
    os.unlink(staged)


def run_to_keras(run_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Write a run's model as a ``.keras`` file of stock Keras layers, vocabulary beside it.

    A ``--mask-padding`` run's embedding is ``Embedding(mask_zero=True)``; a run's
    ``--ngrams N`` is carried by its vocabulary's n-gram tokens (:func:`vocabulary_ngrams`),
    with a warning when they do not show it (say no N-gram made it into the vocabulary):
    the conversion back then needs ``--ngrams N``.

    Both files are written to a hidden staging folder beside ``path``
    (:func:`embeddings.files.claim`) and moved into place at the end, never over an
    existing file, so a failure leaves nothing behind.

    Args:
        run_dir (str | os.PathLike): the run directory.
        path (str | os.PathLike): the ``.keras`` file to write; its vocabulary goes to
            :func:`_sidecar` of it.

    Returns:
        Path: the ``.keras`` file.

    Raises:
        InvalidInput: ``path`` does not end in ``.keras``, or it or its vocabulary file
            exists.
        RunFormatError: ``run_dir`` is not a valid run directory.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidInput(f"The output must end in .keras. Received: path={str(path)!r}")
    sidecar = _sidecar(path)
    for target in (path, sidecar):
        _refuse_existing(target)
    run = runs.load_run(run_dir)
    settings = run.settings
    shown = vocabulary_ngrams(run.vocabulary)
    if shown != settings.text.ngrams:
        log.warning("%s: the run has ngrams=%d but its vocabulary's longest token has %d "
                    "words, so the file cannot show it; convert %s back with --ngrams %d",
                    run_dir, settings.text.ngrams, shown, path.name, settings.text.ngrams)
    from embeddings import keras_model  # Keras loads slowly: only once the checks pass

    model = keras_model.build_model(settings.text.vocab_size, settings.model.embedding_dim,
                                    settings.model.hidden_units,
                                    sequence_length=settings.text.sequence_length,
                                    exact_embedding=False, compile=False,
                                    mask_zero=settings.model.mask_padding)
    keras_model.set_native_weights(model, run.weights)
    prefix = f".{path.name}.partial-"
    sweep(path.parent, prefix)  # staging of a killed export
    staging = claim(path.parent, prefix)
    try:
        model.save(staging.path / path.name)
        atomic_write_text(staging.path / sidecar.name,
                          "".join(t + "\n" for t in run.vocabulary))
        _place(staging.path / sidecar.name, sidecar)
        try:  # the model last: it is what a reader looks for
            _place(staging.path / path.name, path)
        except BaseException:
            sidecar.unlink()
            raise
    finally:
        staging.release()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m embeddings.convert SRC DST``: the direction follows from SRC and DST."""
    parser = ArgumentParser(prog="python -m embeddings.convert",
                            description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("source", help=".keras / .weights.h5 file, or a run directory")
    parser.add_argument("dest", help="run directory to create, or a .keras file to write")
    parser.add_argument("--vocabulary", help="vocabulary file for a Keras file without one")
    parser.add_argument("--sequence-length", type=int, help="tokens per review (default: "
                        "the file's, else 100)")
    parser.add_argument("--ngrams", type=int, help="the run's n-grams are 1 to N words "
                        "(default: the file's TextVectorization's, else the most words of a "
                        "vocabulary token: Keras joins an n-gram's words with one space)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        if Path(args.source).is_dir():
            written = run_to_keras(args.source, args.dest)
        else:
            written = keras_to_run(args.source, args.dest, vocabulary=args.vocabulary,
                                   sequence_length=args.sequence_length, ngrams=args.ngrams)
        print(f"Wrote {written}")
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
