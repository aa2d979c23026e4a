"""One process against N torchrun ranks: the same run, its history and weights, and its time.

Usage::

    python -m benchmarks.ranks [--ranks 2] [--train-args "--epochs 15"] [--out REPORT.json]

Trains ``python -m embeddings.train`` once as one process and once as ``--ranks`` data-
parallel processes (``python -m torch.distributed.run --standalone --nproc_per_node=N -m
embeddings.train``, gloo on the CPU, NCCL on CUDA) with the same flags (``--train-args``,
split as a shell would; the data is ``$EMBEDDINGS_DATA``), then reports, per epoch, both
histories and their differences (the data-parallel contract: ``val_accuracy`` within 0.002
of one process, losses within float32 rounding), the largest difference of each weight,
and each process's wall time from start to exit.  On a machine with fewer cores than
ranks x threads the ranks share cores: the time says what this machine did, not what N
machines would.  The JSON report (``benchmarks/reports/ranks-<host>-<date>.json``) also
holds the environment.  Nothing is asserted.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from embeddings.errors import ArgumentParser, InvalidInput, cli

RANKS = 2
KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _train(launch: list[str], train_args: Sequence[str], out: Path) -> float:
    """Run one training to its end; its wall seconds.

    Raises:
        InvalidInput: the training failed (its last lines are in the message).
    """
    start = time.perf_counter()
    done = subprocess.run([*launch, "-m", "embeddings.train", *train_args, "--out", str(out)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise InvalidInput(f"training failed ({' '.join(launch)}): "
                           f"{done.stderr.strip().splitlines()[-1:]}. Received: --train-args "
                           f"{shlex.join(train_args)}; fix the flags or the data.")
    return wall


def measure(ranks: int, train_args: Sequence[str]) -> dict[str, Any]:
    """Train as one process and as ``ranks`` ranks; the report's measurements."""
    from safetensors.numpy import load_file

    launchers = {"one": [sys.executable],
                 "ranks": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={ranks}"]}
    with tempfile.TemporaryDirectory() as tmp:
        walls = {name: _train(launch, train_args, Path(tmp) / name)
                 for name, launch in launchers.items()}
        histories = {name: json.loads((Path(tmp) / name / "history.json").read_text())
                     for name in launchers}
        weights = {name: load_file(Path(tmp) / name / "model.safetensors") for name in launchers}
    deviation = {key: [abs(a - b) for a, b in zip(histories["one"][key], histories["ranks"][key],
                                                  strict=True)] for key in KEYS}
    return {
        "wall_s": walls,
        "history": {name: {k: h[k] for k in KEYS} for name, h in histories.items()},
        "max_abs_difference": {key: max(values) for key, values in deviation.items()},
        "weights_max_abs_difference": {
            name: float(np.abs(weights["one"][name] - weights["ranks"][name]).max())
            for name in weights["one"]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    parser = ArgumentParser(prog="python -m benchmarks.ranks", description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=RANKS, help=f"default: {RANKS}")
    parser.add_argument("--train-args", default="", help="flags for embeddings.train")
    parser.add_argument("--out", type=Path, default=None, help="report path")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.ranks < 2:
            raise InvalidInput(f"--ranks must be at least 2. Received: --ranks {args.ranks}")
        train_args = shlex.split(args.train_args)
        report = {"benchmark": "ranks", "environment": common.environment(),
                  "ranks": args.ranks, "train_args": train_args,
                  **measure(args.ranks, train_args)}
        out = args.out or common.default_out("ranks")
        common.write_json(out, report)
        print(f"wall: one process {report['wall_s']['one']:.1f} s, {args.ranks} ranks "
              f"{report['wall_s']['ranks']:.1f} s")
        print("largest per-epoch difference: " + ", ".join(
            f"{k} {v:.2g}" for k, v in report["max_abs_difference"].items()))
        print(f"report: {out}")
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
