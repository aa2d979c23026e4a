"""What every benchmark report shares: timing statistics, the run's environment, the writer.

* :func:`stats` summarises repeated timings (median, min, max, quartiles, IQR);
* :func:`measure` times a statement with ``torch.utils.benchmark`` after a warm-up,
  and :func:`derived_backward` turns two medians into a backward-only estimate;
* :func:`environment` records versions, hardware, threads and the code revision,
  reading package versions from their installed metadata so that nothing with
  side effects is imported (Keras picks its backend on import, TensorFlow starts
  thread pools);
* :func:`write_json` writes a report atomically (temporary file in the same
  folder, then ``os.replace``), creating missing folders;
* :func:`phases` reads the seconds of a training run's phases off its log;
* :func:`train_args` parses a benchmark's ``--train-args`` (flags for every training run);
* :func:`spawn` runs a command in its own process and measures its wall time and peak
  resident set size;
* :func:`default_out` names a report ``benchmarks/reports/<name>-<host>-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import benchmark

from embeddings.errors import InvalidInput
from embeddings.files import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PROCESS_TIMEOUT_S = 3 * 3600  # one measured process (spawn)
MIB = 1024  # ru_maxrss is in KiB on Linux
REPORTS = REPO / "benchmarks" / "reports"
# Variables that change thread counts, how idle OpenMP threads wait (two OpenMP runtimes
# in one process, torch's libgomp and a system one, spin against each other) or allocation.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS",
                    "KMP_BLOCKTIME", "EMBEDDINGS_KERNELS", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES",
                    "THP_MEM_ALLOC_ENABLE")


def quartiles(times: Sequence[float]) -> tuple[float, float]:
    """First and third quartiles (inclusive method; both equal the value for one timing).

    Args:
        times (Sequence[float]): at least one value.

    Returns:
        tuple[float, float]: ``(q1, q3)``.

    Raises:
        ValueError: ``times`` is empty.
    """
    if not times:
        raise ValueError("times must hold at least one timing. Received: times=[]")
    if len(times) == 1:
        return float(times[0]), float(times[0])
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, q3


def stats(times: Sequence[float]) -> dict[str, Any]:
    """Median, min, max, quartiles and IQR of timings.

    Args:
        times (Sequence[float]): seconds, one per repetition (at least one).

    Returns:
        dict[str, Any]: ``median_s``, ``min_s``, ``max_s``, ``q1_s``, ``q3_s``,
        ``iqr_s`` (``q3 - q1``) and the raw ``times_s``.

    Raises:
        ValueError: ``times`` is empty.
    """
    q1, q3 = quartiles(times)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "q1_s": q1,
        "q3_s": q3,
        "iqr_s": q3 - q1,
        "times_s": list(times),
    }


def measure(fn: Callable[[], object], min_run_time: float, warmup: int = 3) -> dict[str, Any]:
    """Warm up, then ``blocked_autorange`` on all of torch's threads.

    Args:
        fn (Callable[[], object]): the statement to time.
        min_run_time (float): seconds of measurement.
        warmup (int): untimed calls first. Default: ``3``.

    Returns:
        dict[str, Any]: ``median_s``, ``iqr_s``, ``runs`` (blocks measured) and
        ``number_per_run`` (calls per block).
    """
    for _ in range(warmup):
        fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn},
                            num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_s": m.median, "iqr_s": m.iqr, "runs": len(m.times),
            "number_per_run": m.number_per_run}


def derived_backward(forward: dict[str, Any], both: dict[str, Any],
                     why: str = "") -> dict[str, Any]:
    """Backward as ``median(forward_backward) - median(forward)`` (no IQR), or a skip when
    that is not positive.

    Args:
        forward (dict[str, Any]): the forward timing.
        both (dict[str, Any]): the forward_backward timing.
        why (str): why the backward could not be timed alone. Default: ``""``.

    Returns:
        dict[str, Any]: a timing with ``method`` saying how it was derived, or ``skipped``.
    """
    difference = both["median_s"] - forward["median_s"]
    if difference <= 0:
        return {"skipped": "skipped: forward_backward median - forward median <= 0 (noise)"}
    reason = f" ({why.strip().splitlines()[0][:160]})" if why.strip() else ""
    return {"median_s": difference, "iqr_s": None, "runs": None,
            "method": f"derived: forward_backward median minus forward median{reason}"}


def git(*args: str) -> str | None:
    """Output of a read-only git command in the repository, or ``None``.

    Args:
        *args (str): git arguments, e.g. ``"rev-parse", "HEAD"``.

    Returns:
        str | None: stripped stdout, or ``None`` when git is missing or fails.
    """
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
            timeout=30, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def cpu_model() -> str:
    """The CPU model from ``/proc/cpuinfo``, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def installed_version(distribution: str) -> str | None:
    """A distribution's installed version from its metadata, without importing it."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu() -> dict[str, Any] | None:
    """Name, memory and CUDA version of GPU 0, or ``None`` without CUDA."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "total_memory_bytes": props.total_memory,
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
    }


def environment() -> dict[str, Any]:
    """Versions, hardware, threads and code revision of this run.

    Keras and TensorFlow versions are the installed ones (``None`` when absent);
    ``keras_backend`` is the loaded Keras's backend, or ``None`` when this process
    has not imported Keras.

    Returns:
        dict[str, Any]: a JSON-ready mapping.
    """
    status = git("status", "--porcelain", "--untracked-files=no")
    keras = sys.modules.get("keras")
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "keras": installed_version("keras"),
        "keras_backend": keras.backend.backend() if keras is not None else None,
        "tensorflow": installed_version("tensorflow") or installed_version("tensorflow-cpu"),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "environment_variables": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "gpu": gpu(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "hostname": socket.gethostname(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def default_out(name: str) -> Path:
    """``benchmarks/reports/<name>-<host>-<UTC date>.json``.

    Args:
        name (str): report stem, e.g. ``"vectorizer"`` or ``"hotloop-cpu"``.

    Returns:
        Path: the report path (its folder may not exist yet).
    """
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    return REPORTS / f"{name}-{socket.gethostname()}-{date}.json"


def write_json(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON atomically, creating missing folders.

    Args:
        path (str | os.PathLike[str]): destination.
        report (dict[str, Any]): JSON-ready mapping.
    """
    atomic_write_json(path, report)


# Lines of python -m embeddings.train's log.
RATE_LINE = re.compile(r"^(adapt|vectorize): (\d+) reviews in ([\d.]+) s", re.M)
EPOCH_LINE = re.compile(r"^Epoch \d+/\d+ - ([\d.]+)s", re.M)
READ_LINE = re.compile(r"^(?:IMDb from|Corpus) .*, read in ([\d.]+) s$", re.M)
WROTE_LINE = re.compile(r"^Wrote .* in ([\d.]+)s$", re.M)


def phases(log: str) -> dict[str, float | None]:
    """Seconds of a training run's phases from its log (``None`` for a line it lacks):
    ``read`` (reading and splitting the reviews), ``adapt``, ``vectorize``, ``epochs``
    (their sum, each with its validation) and ``in_process`` (from after the command
    line's parsing to the run directory written: the process's time less Python's start,
    the first imports and the exit)."""
    rates = {step: float(s) for step, _, s in RATE_LINE.findall(log)}
    epochs = [float(s) for s in EPOCH_LINE.findall(log)]
    read, wrote = READ_LINE.search(log), WROTE_LINE.search(log)
    return {"read": float(read[1]) if read else None, "adapt": rates.get("adapt"),
            "vectorize": rates.get("vectorize"), "epochs": sum(epochs) if epochs else None,
            "in_process": float(wrote[1]) if wrote else None}


def train_args(parser: argparse.ArgumentParser, line: str, reserved: Sequence[str],
               instead: str) -> list[str]:
    """A benchmark's ``--train-args`` as a list: ``line`` split as a shell would, refused
    (``parser.error``, exit 2) when it does not split or sets a flag of ``reserved``,
    which the benchmark sets per case (``instead`` names its own flags for them)."""
    try:
        args = shlex.split(line)
    except ValueError as err:
        parser.error(f"--train-args must split as a shell line ({err}). "
                     f"Received: --train-args={line!r}")
    taken = [a for a in args if a.split("=")[0] in reserved]
    if taken:
        parser.error(f"--train-args must not set {', '.join(reserved)}: each case sets them. "
                     f"Received: {' '.join(taken)}; use {instead}")
    return args


@dataclass(frozen=True)
class Process:
    """A finished process: wall seconds to its end (or to its marker line), peak RSS and
    the JSON lines it printed."""

    wall_s: float
    peak_rss_kib: int
    events: list[dict[str, Any]]


def spawn(argv: Sequence[str], log: Path, marker: str | None = None,
          env: Mapping[str, str] | None = None) -> Process:
    """Run ``argv`` from the repository, its output to ``log``, and measure it.

    Args:
        argv (Sequence[str]): the command.
        log (Path): file for stderr (and stdout when ``marker`` is ``None``).
        marker (str | None): stop the clock when a stdout JSON line has this ``event``
            instead of at the exit; stdout is then read here. Default: ``None``.
        env (Mapping[str, str] | None): its environment. Default: ``None`` (this one's).

    Returns:
        Process: the measurement and the JSON lines of stdout (none without a ``marker``).

    Raises:
        InvalidInput: the command refused its input (exit status 2); its message is kept.
        RuntimeError: it failed otherwise, or never printed ``marker``.
    """
    events: list[dict[str, Any]] = []
    stopped = None
    with open(log, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE if marker else sink,
                                stderr=sink, text=marker is not None, env=env)
        watchdog = threading.Timer(PROCESS_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout or ():
                if line.startswith("{"):
                    events.append(json.loads(line))
                    if stopped is None and events[-1].get("event") == marker:
                        stopped = time.perf_counter()
            _, status, usage = os.wait4(proc.pid, 0)
            end = time.perf_counter()
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        finally:
            watchdog.cancel()
            if proc.returncode is None:  # interrupted: leave no training behind
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] or ["no output"]
        what = f"{shlex.join(argv)} exited with status {proc.returncode}: {' '.join(tail)}"
        raise InvalidInput(what) if proc.returncode == 2 else RuntimeError(what)
    if marker is not None and stopped is None:
        raise RuntimeError(f"{shlex.join(argv)} printed no {marker!r} line; see {log}")
    return Process((stopped or end) - start, int(usage.ru_maxrss), events)
