"""Overlay the training curves of several runs: ``python -m embeddings.plot RUN [RUN ...]``.

Draws the loss and the accuracy of every epoch, training (solid) and validation
(dashed), one colour and marker per run, into one PNG (1200 x 500 px, as a run's own
``curves.png``): for example the three backends trained with the same flags, or two
presets.  Each run is named in the legend by its folder and backend, or by the path as
given where two folders share a name.

The picture goes to ``--out`` (default ``curves-compare.png`` in the current folder),
written atomically.  It is a derived file, not a run: an existing file of that name is
replaced (a folder is refused).  Every RUN is read and validated by
:func:`embeddings.runs.load_run`; a converted model has no training history and is
refused, as is a path that is not a run directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.files import atomic_write_bytes
from embeddings.runs import Run, load_run
from embeddings.runs.pictures import curves_png, has_curves

DEFAULT_OUT = "curves-compare.png"


def run_labels(runs: Sequence[Run], given: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Legend names: ``folder (backend)``, or ``path (backend)`` for every run whose folder
    name another run shares.

    Args:
        runs (Sequence[Run]): the loaded runs.
        given (Sequence[str | os.PathLike]): their paths as the caller gave them.

    Returns:
        list[str]: one name per run.
    """
    names = [Path(path).resolve().name for path in given]
    labels = []
    for run, path, name in zip(runs, given, names, strict=True):
        backend = run.config.get("run", {}).get("backend", "converted")
        shown = name if names.count(name) == 1 else os.fspath(path)
        labels.append(f"{shown} ({backend})")
    return labels


def compare_png(paths: Sequence[str | os.PathLike[str]]) -> bytes:
    """The overlaid curves of the runs at ``paths`` as PNG bytes.

    Args:
        paths (Sequence[str | os.PathLike]): run directories written by training.

    Returns:
        bytes: the PNG (1200 x 500 px).

    Raises:
        InvalidInput: no path, or a run without training history (a converted model).
        RunFormatError: a path that is not a run directory, or a malformed run.
    """
    if not paths:
        raise InvalidInput("Give at least one run directory. Received: no RUN; pass the "
                           "folders of the runs to compare.")
    runs = [load_run(path) for path in paths]
    for run, path in zip(runs, paths, strict=True):
        if not has_curves(run.history):
            raise InvalidInput(
                f"{path} has no training history: it is a converted model, so it has no "
                f"curves to draw. Received: run={os.fspath(path)!r}; pass runs written by "
                "`python -m embeddings.train`."
            )
    labels = run_labels(runs, paths)
    title = ("loss and accuracy per epoch: " + ", ".join(labels) if len(labels) <= 3
             else f"loss and accuracy per epoch: {len(labels)} runs")
    return curves_png(list(zip(labels, (run.history for run in runs), strict=True)),
                      title=title)


def write_comparison(paths: Sequence[str | os.PathLike[str]],
                     out: str | os.PathLike[str] = DEFAULT_OUT) -> Path:
    """Draw :func:`compare_png` into ``out`` atomically, replacing a file already there.

    Args:
        paths (Sequence[str | os.PathLike]): run directories written by training.
        out (str | os.PathLike): the PNG to write. Default: ``"curves-compare.png"``.

    Returns:
        Path: ``out``.

    Raises:
        InvalidInput: ``out`` does not end in ``.png`` or is a folder, or as
            :func:`compare_png`.
        RunFormatError: as :func:`compare_png`.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InvalidInput(f"--out must name a .png file. Received: out={os.fspath(out)!r}; "
                           "pass e.g. curves-compare.png.")
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a folder. Received: out={os.fspath(out)!r}; "
                           "pass the path of a .png file.")
    atomic_write_bytes(out, compare_png(paths))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: write the overlay and print its path."""
    parser = ArgumentParser(prog="python -m embeddings.plot",
                            description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories to overlay")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"the PNG to write (replaced if it exists). Default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)

    def body() -> int:
        print(write_comparison(args.runs, args.out))
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
