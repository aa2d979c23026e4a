"""The tutorial's whole run, as a user starts it: process wall time and peak memory of
``python -m embeddings.train``, backend by backend.

Usage::

    python -m benchmarks.whole_run [--data aclImdb-train.tar.gz] [--backends torch,keras,tf]
                                   [--repeats 5] [--train-args "..."] [--tf-python PATH]
                                   [--out REPORT.json]

Each case is ``python -m embeddings.train --backend NAME --data DATA --out DIR`` plus
``--train-args`` (split as a shell would; the tutorial's defaults without it), in its own
process started with :class:`subprocess.Popen`.  Its wall time runs from that start to
the process's exit: interpreter start, imports, reading and splitting the reviews,
adapting and vectorizing, the 15 epochs with their checkpoints, writing the run
directory (pictures included) and the interpreter's exit.  Its peak memory is the
process's peak resident set size (``ru_maxrss`` of :func:`os.wait4`).  ``--repeats``
rounds run every case once each, in order, so that a slow spell of the machine touches
every case alike.

``tf`` runs under ``--tf-python`` (default ``$EMBEDDINGS_TF_PYTHON``, else this
interpreter), without ``KERAS_BACKEND`` in its environment; where that interpreter cannot
import TensorFlow the case is reported as skipped, with the reason.

The JSON report (default ``benchmarks/reports/whole-run-<host>-<date>.json``) holds the
environment, the data (its description, with the archive's SHA-256), and per case
(``cases.<backend>``, and ``cases.torch-first``: the torch case again, each run the first
on its archive, see below) the command, wall-time statistics (``wall``: median, min, max, IQR
and every time), peak memory (MiB: the largest of the repetitions, and each) and the
median seconds of the phases the run logs (``phases_s``: :func:`benchmarks.common.phases`;
``None`` where a backend's log lacks the line, as ``tf``'s epoch lines);
``summary`` gives each case's median time and peak memory over ``torch``'s.  Timings are
reported, never asserted.

A run keeps the reviews it read from an archive in the cache
(:func:`embeddings.data.tarball.archive_reviews`), and every later run on the same
archive reads them from there: the backends' cases measure such later runs (this
benchmark reads the archive once before it starts), ``torch-first`` the first one, its
kept reviews removed before each start.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import MIB, spawn, stats
from embeddings.config import BACKENDS
from embeddings.data import read_source
from embeddings.data.tarball import parsed_path
from embeddings.errors import ArgumentParser, cli
from embeddings.testing import find_tensorflow

REPEATS = 5
# The torch case again, each run the first on its archive: the reviews an earlier run kept
# (embeddings.data.tarball.archive_reviews) are removed before it starts.
FIRST = "torch-first"
RESERVED_TRAIN_FLAGS = ("--backend", "--data", "--out")  # set per case by this benchmark


def command(backend: str, python: str, data: str, train_args: Sequence[str],
            out: str) -> list[str]:
    """The training command of one case."""
    return [python, "-m", "embeddings.train", "--backend", backend, "--data", data,
            "--out", out, *train_args]


def kept_copy(data: str) -> Path | None:
    """Where the training reviews of the archive ``data`` are kept between runs (``None``
    for a folder or a URL, whose reviews are not kept this way)."""
    path = Path(data)
    if not path.is_file():
        return None
    return parsed_path(hashlib.sha256(path.read_bytes()).hexdigest(), "train")


def run(args: argparse.Namespace) -> int:
    """Check the data, measure every case ``args.repeats`` times, write and print."""
    data = str(Path(args.data).expanduser().resolve()) \
        if Path(args.data).expanduser().exists() else args.data
    reviews, source = read_source(data)  # refuses an unusable source before measuring
    pythons = {b: sys.executable for b in args.backends}
    envs: dict[str, dict[str, str] | None] = {b: None for b in args.backends}
    skipped: dict[str, str] = {}
    if "tf" in pythons:
        pythons["tf"], envs["tf"], found = find_tensorflow(args.tf_python)
        if not found:
            skipped["tf"] = (f"skipped: {pythons['tf']} cannot import tensorflow; pass "
                             "--tf-python with the interpreter of an environment that has the "
                             "tf extra")
    kept = kept_copy(data)
    cases_in_order = [(b, b) for b in args.backends]  # (case, backend)
    if "torch" in args.backends:
        cases_in_order.insert(args.backends.index("torch") + 1, (FIRST, "torch"))
        if kept is None:
            skipped[FIRST] = ("skipped: the reviews of a folder are read from it every run; "
                              "only an archive's are kept")
    runs = [(case, backend) for case, backend in cases_in_order if case not in skipped]
    walls: dict[str, list[float]] = {case: [] for case, _ in runs}
    peaks: dict[str, list[int]] = {case: [] for case, _ in runs}
    logs: dict[str, list[dict[str, float | None]]] = {case: [] for case, _ in runs}
    out = args.out or common.default_out("whole-run")
    env = common.environment()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-whole-run-") as tmp:
        for repeat in range(args.repeats):
            for case, backend in runs:
                run_dir = Path(tmp) / f"{case}-{repeat}"
                log = Path(tmp) / f"{case}-{repeat}.log"
                if case == FIRST and kept is not None:
                    kept.unlink(missing_ok=True)
                process = spawn(command(backend, pythons[backend], data, args.train_args,
                                        str(run_dir)), log,
                                env=envs[backend])
                logs[case].append(common.phases(log.read_text(errors="replace")))
                walls[case].append(process.wall_s)
                peaks[case].append(process.peak_rss_kib)
                print(f"[{repeat + 1}/{args.repeats}] {case}: {process.wall_s:.2f} s, peak "
                      f"{process.peak_rss_kib / MIB:.0f} MiB", file=sys.stderr, flush=True)
    cases: dict[str, dict[str, Any]] = {}
    for case, backend in cases_in_order:
        if case in skipped:
            cases[case] = {"skipped": skipped[case]}
            continue
        cases[case] = {
            "command": shlex.join(command(backend, pythons[backend], data, args.train_args,
                                          f"<tmpdir>/{case}-<i>")),
            "wall": stats(walls[case]),
            "peak_rss_mib": max(peaks[case]) / MIB,
            "peak_rss_mib_each": [k / MIB for k in peaks[case]],
            "phases_s": {name: _median([p[name] for p in logs[case]])
                         for name in logs[case][0]},
        }
    report = {
        "benchmark": "whole_run",
        "environment": env,
        "data": {"source": source, "reviews": len(reviews)},
        "config": {
            "backends": args.backends, "repeats": args.repeats, "train_args": args.train_args,
            "order": "interleaved: every case once per round, in the order of backends",
            FIRST: "torch, with the reviews kept by earlier runs removed before each run; "
                   "the other cases read them kept",
            "wall": "time.perf_counter from Popen to the process's exit",
            "peak_rss": "ru_maxrss of os.wait4, MiB; max over repeats",
        },
        "cases": cases,
        "summary": summary(cases),
        "loadavg": {"before": load_before, "after": os.getloadavg()},
    }
    common.write_json(out, report)
    for line in table(report):
        print(line)
    print(f"report: {out}")
    return 0


def _median(values: list[float | None]) -> float | None:
    """The median of a phase over the repetitions, ``None`` where a log lacked it."""
    return None if None in values else statistics.median(v for v in values if v is not None)


def summary(cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each measured case's median time and peak memory over ``torch``'s (``None``
    without a ``torch`` case)."""
    measured = {name: c for name, c in cases.items() if "wall" in c}
    base = measured.get("torch")
    return {
        "wall_ratio_to_torch": {n: c["wall"]["median_s"] / base["wall"]["median_s"]
                                if base else None for n, c in measured.items()},
        "peak_rss_ratio_to_torch": {n: c["peak_rss_mib"] / base["peak_rss_mib"]
                                    if base else None for n, c in measured.items()},
    }


def table(report: dict[str, Any]) -> list[str]:
    """One line per case: median, min and max seconds, peak MiB, ratio to torch."""
    ratios = report["summary"]["wall_ratio_to_torch"]
    lines = [f"{'case':<12} {'median s':>9} {'min s':>8} {'max s':>8} {'peak MiB':>9}  "
             "/torch"]
    for name, c in report["cases"].items():
        if "wall" not in c:
            lines.append(f"{name:<12} {c['skipped']}")
            continue
        wall, ratio = c["wall"], ratios.get(name)
        lines.append(f"{name:<12} {wall['median_s']:9.2f} {wall['min_s']:8.2f} "
                     f"{wall['max_s']:8.2f} {c['peak_rss_mib']:9.0f}  "
                     + ("n/a" if ratio is None else f"{ratio:.2f}x"))
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag or a bad value (status 2; the valid flags are listed).
    """
    parser = ArgumentParser(prog="python -m benchmarks.whole_run",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EMBEDDINGS_DATA") or None,
                        help="aclImdb folder or tarball (default: $EMBEDDINGS_DATA)")
    parser.add_argument("--backends", default="torch,keras,tf",
                        help=f"comma-separated, of {', '.join(BACKENDS)} (default: torch,keras,tf)")
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help=f"rounds of every case (default: {REPEATS})")
    parser.add_argument("--train-args", default="",
                        help="more flags for every run, as one shell line, e.g. "
                             "'--epochs 5' (one flag alone: --train-args=--deterministic)")
    parser.add_argument("--tf-python", default=None,
                        help="interpreter for the tf case (default: $EMBEDDINGS_TF_PYTHON, "
                             "else this one)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/whole-run-<host>-"
                             "<date>.json)")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data is required: an aclImdb folder or tarball. Received: no --data "
                     "and no EMBEDDINGS_DATA; pass --data aclImdb_v1.tar.gz")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: --repeats={args.repeats}")
    backends = list(dict.fromkeys(b.strip() for b in args.backends.split(",") if b.strip()))
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        parser.error(f"--backends takes a comma-separated list of {', '.join(BACKENDS)}. "
                     f"Received: --backends={args.backends!r}")
    args.backends = backends
    args.train_args = common.train_args(parser, args.train_args, RESERVED_TRAIN_FLAGS,
                                        "--backends and --data")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    return cli(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
