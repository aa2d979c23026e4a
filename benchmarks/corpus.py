"""Your own corpus at scale: a million-review Parquet file through ``python -m embeddings.train``.

Usage::

    python -m benchmarks.corpus --data aclImdb-train.tar.gz [--corpus /tmp/big.parquet]
                                [--rows 1000000] [--seed 0] [--epochs 1] [--out REPORT.json]

``--corpus`` is made first when it does not exist: ``--rows`` reviews drawn with
replacement (NumPy ``default_rng(--seed)``) from the 25,000 IMDb **training** reviews of
``--data`` (never the test reviews), as ``text`` (UTF-8; the few reviews that are not
valid UTF-8 keep U+FFFD for their bad bytes) and ``label`` (0/1), in row groups of 50,000.

Then ``python -m embeddings.train --data CORPUS --epochs N --device cpu`` runs twice, each
in its own process with one fresh ``HF_DATASETS_CACHE``: ``first`` (``datasets`` converts
the Parquet file into its memory-mapped Arrow cache) and ``cached`` (it reuses it).  For
each the report holds the wall time from the process's start to its exit, its peak
resident set size (``ru_maxrss`` of :func:`os.wait4`, file pages of the memory-mapped
texts included), and the reviews per second of ``adapt`` (training rows), ``vectorize``
(all rows) and training (training rows over the epochs' summed seconds, each epoch's
validation pass included), read off the run's own log lines.  The JSON report defaults to
``benchmarks/reports/corpus-<host>-<date>.json``.  Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import common
from benchmarks.common import MIB, spawn
from embeddings.data import read_source
from embeddings.errors import ArgumentParser, cli

# Defaults.
ROWS = 1_000_000
SEED = 0
EPOCHS = 1
ROW_GROUP = 50_000
RUNS = ("first", "cached")
_SPLIT = re.compile(r"^Corpus .*: (\d+) training and (\d+) validation rows", re.M)


def make_corpus(data: str, path: Path, rows: int, seed: int) -> dict[str, Any]:
    """Write ``rows`` IMDb training reviews drawn with replacement as a Parquet file.

    Args:
        data (str): an IMDb source holding ``aclImdb/train``.
        path (Path): the file to write (atomically: a hidden sibling, then renamed).
        rows (int): how many rows.
        seed (int): the draw's seed.

    Returns:
        dict[str, Any]: the file, its rows, seed and size, and the source.
    """
    reviews, where = read_source(data)
    texts = pa.array([r.raw.decode("utf-8", "replace") for r in reviews], pa.string())
    labels = pa.array([r.label for r in reviews], pa.int64())
    drawn = np.random.default_rng(seed).integers(0, len(reviews), rows)  # (rows,)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    schema = pa.schema([("text", pa.string()), ("label", pa.int64())])
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for start in range(0, rows, 2 * ROW_GROUP):
                take = pa.array(drawn[start:start + 2 * ROW_GROUP])
                writer.write_table(pa.table({"text": texts.take(take),
                                             "label": labels.take(take)}), ROW_GROUP)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return {"path": str(path), "rows": rows, "seed": seed, "bytes": path.stat().st_size,
            "drawn_from": where}


def rates(log: str) -> dict[str, Any]:
    """Reviews per second of adapt, vectorize and training from a run's log.

    Raises:
        RuntimeError: the log lacks one of the lines.
    """
    found = {step: (int(n), float(s)) for step, n, s in common.RATE_LINE.findall(log)}
    split = _SPLIT.search(log)
    epochs = [float(s) for s in common.EPOCH_LINE.findall(log)]
    if set(found) != {"adapt", "vectorize"} or split is None or not epochs:
        raise RuntimeError("the run's log lacks its adapt, vectorize, split or epoch lines")
    train = int(split[1])
    out: dict[str, Any] = {step: {"reviews": n, "seconds": s, "reviews_per_s": n / s}
                           for step, (n, s) in found.items()}
    out["train"] = {"reviews": train * len(epochs), "seconds": sum(epochs),
                    "reviews_per_s": train * len(epochs) / sum(epochs), "epochs_s": epochs}
    return out


def measure(corpus: Path, epochs: int, folder: Path) -> dict[str, Any]:
    """The two runs of the module's docstring, in ``folder``."""
    os.environ["HF_DATASETS_CACHE"] = str(folder / "hf")  # inherited by the runs
    results = {}
    for name in RUNS:
        out, log = folder / f"run-{name}", folder / f"{name}.log"
        argv = [sys.executable, "-m", "embeddings.train", "--data", str(corpus),
                "--epochs", str(epochs), "--device", "cpu", "--out", str(out)]
        process = spawn(argv, log)
        results[name] = {"command": " ".join(argv[1:]).replace(str(out), "<tmpdir>/run"),
                         "wall_s": process.wall_s, "peak_rss_mib": process.peak_rss_kib / MIB,
                         **rates(log.read_text(errors="replace"))}
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag or a bad value (status 2; the valid flags are listed).
    """
    parser = ArgumentParser(prog="python -m benchmarks.corpus",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EMBEDDINGS_DATA") or None,
                        help="aclImdb folder or tarball to draw the training reviews from "
                             "(default: $EMBEDDINGS_DATA)")
    parser.add_argument("--corpus", type=Path,
                        default=Path(tempfile.gettempdir()) / "embeddings-corpus-1m.parquet",
                        help="the Parquet corpus, made when missing")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of a corpus to make")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the draw")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of each run")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/corpus-<host>-<date>"
                             ".json)")
    args = parser.parse_args(argv)
    if args.data is None and not args.corpus.exists():
        parser.error(f"--data is required to make {args.corpus}: an aclImdb folder or tarball. "
                     "Received: no --data and no EMBEDDINGS_DATA; pass --data "
                     "aclImdb_v1.tar.gz")
    for flag in ("rows", "epochs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1. Received: {getattr(args, flag)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Make the corpus if needed, run the two trainings, write the report."""
    args = parse_args(argv)

    def body() -> int:
        made = None
        if not args.corpus.exists():
            made = make_corpus(args.data, args.corpus, args.rows, args.seed)
        with tempfile.TemporaryDirectory(prefix="corpus-bench-") as folder:
            runs = measure(args.corpus, args.epochs, Path(folder))
        report = {"kind": "corpus", "environment": common.environment(),
                  "corpus": made or {"path": str(args.corpus),
                                     "bytes": args.corpus.stat().st_size},
                  "epochs": args.epochs, "runs": runs}
        out = args.out or common.default_out("corpus")
        common.write_json(out, report)
        for name, run in runs.items():
            print(f"{name}: wall {run['wall_s']:.1f} s, peak RSS {run['peak_rss_mib']:,.0f} MiB, "
                  + ", ".join(f"{step} {run[step]['reviews_per_s']:,.0f} reviews/s"
                              for step in ("adapt", "vectorize", "train")), flush=True)
        print(f"Wrote {out}")
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
