"""Test accuracy, training time and peak memory of our presets and of fastText, side by side.

Usage::

    python -m benchmarks.accuracy --data aclImdb-labelled.tar.gz [--presets tutorial,bigrams]
                                  [--train-args "--device cpu"] [--repeats 3] [--threads 2]
                                  [--skip-fasttext] [--out REPORT.json]

``--data`` (default ``$EMBEDDINGS_DATA``) must hold both labelled splits: ``aclImdb/train``
to train on and the 25,000 ``aclImdb/test`` reviews to score on; it is read once first, to
refuse an unusable source before anything is measured.  The cases:

* one per name of ``--presets``: ``python -m embeddings.train --preset NAME --data DATA
  --out DIR`` plus ``--train-args`` (split as a shell would), which trains on the preset's
  training subset of ``aclImdb/train`` (the tutorial's: 20,000 reviews, 5,000 held out for
  validation), then ``python -m embeddings.evaluate --run DIR --split test --data DATA
  --json``, whose ``accuracy`` (probability above 0.5) is the case's test accuracy;
* ``fasttext`` (fastText's defaults: unigrams, dimension 100, 5 epochs, learning rate 0.1)
  and ``fasttext-bigrams`` (``wordNgrams=2``, 10 epochs), ``thread=--threads``, trained
  on **all 25,000** ``aclImdb/train`` reviews (fastText's usual use, and 5,000 more than our
  presets see) standardized as the tutorial does, then scored on the same test reviews
  (:mod:`benchmarks._fasttext_worker`).  ``--skip-fasttext`` leaves them out; without it
  a missing ``fasttext`` is an error that names the ``bench`` extra.

Every training runs in its own process, started with :class:`subprocess.Popen`.  Its
wall time runs from the start of that process to its end for our presets (start, imports,
loading, vectorizing, training, writing the run directory) and to the worker's
``trained`` line for fastText (start, imports, reading, standardizing, training; the
scoring after it is not timed).  Its peak memory is the process's peak resident set size:
``ru_maxrss`` of :func:`os.wait4` for our presets, and the worker's own ``ru_maxrss`` at
its ``trained`` line for fastText (``process_peak_rss_mib`` adds the scoring).  The
scoring is never part of the time.  ``--repeats`` rounds run every case once each, in
order, so that a slow spell of the machine touches every case alike.

The JSON report (default ``benchmarks/reports/accuracy-<host>-<date>.json``) holds the
environment, the data, and per case (``cases.<name>``) its ``kind`` (``preset`` or
``fasttext``), command line, wall-time statistics (``wall``: median, min, max, IQR and
every time), peak memory (MiB, the largest of the repetitions, and each) and the test
accuracy of each repetition; ``summary`` gives each case's median time over
``fasttext-bigrams``'s and the fastest and the most accurate case.  Timings are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import MIB, spawn, stats
from embeddings.data import read_source
from embeddings.errors import ArgumentParser, MissingExtra, cli

# Defaults.
PRESETS = ("tutorial", "bigrams")
REPEATS = 3
THREADS = 2
# fastText's cases: train_supervised's arguments other than its defaults (and thread).
FASTTEXT = {"fasttext": {"wordNgrams": 1, "epoch": 5},
            "fasttext-bigrams": {"wordNgrams": 2, "epoch": 10}}
BASELINE = "fasttext-bigrams"
RESERVED_TRAIN_FLAGS = ("--preset", "--data", "--out")  # set per case by this benchmark
TIMEOUT_S = common.PROCESS_TIMEOUT_S  # one training or scoring process
REPO = common.REPO


@dataclass
class Case:
    """One training setup and what its repetitions measured."""

    name: str
    kind: str  # "preset" or "fasttext"
    argv: list[str]  # the training command; "{out}" stands for the run directory
    wall_s: list[float] = field(default_factory=list)
    peak_rss_kib: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    def command(self, out: str) -> list[str]:
        """The training command with its run directory."""
        return [out if a == "{out}" else a for a in self.argv]


def preset_case(preset: str, data: str, train_args: Sequence[str]) -> Case:
    """``python -m embeddings.train --preset NAME --data DATA --out {out} [train_args]``.

    Args:
        preset (str): a preset of ``embeddings.train``.
        data (str): the IMDb source.
        train_args (Sequence[str]): more flags for ``embeddings.train``.

    Returns:
        Case: the case, nothing measured yet.
    """
    argv = [sys.executable, "-m", "embeddings.train", "--preset", preset, "--data", data,
            "--out", "{out}", *train_args]
    return Case(preset, "preset", argv)


def fasttext_case(name: str, data: str, threads: int) -> Case:
    """The worker's command for one of :data:`FASTTEXT`.

    Args:
        name (str): a key of :data:`FASTTEXT`.
        data (str): the IMDb source.
        threads (int): fastText's ``thread``.

    Returns:
        Case: the case, nothing measured yet.
    """
    params = FASTTEXT[name]
    argv = [sys.executable, "-m", "benchmarks._fasttext_worker", "--data", data,
            "--word-ngrams", str(params["wordNgrams"]), "--epoch", str(params["epoch"]),
            "--threads", str(threads), "--seed", "0"]
    return Case(name, "fasttext", argv)


def score_run(run: Path, data: str) -> tuple[float, dict[str, Any]]:
    """``python -m embeddings.evaluate --run RUN --split test --data DATA --json``.

    Args:
        run (Path): a run directory.
        data (str): the IMDb source with the test reviews.

    Returns:
        tuple[float, dict[str, Any]]: its ``accuracy`` and the whole JSON object.

    Raises:
        RuntimeError: the evaluation failed or printed no JSON.
    """
    argv = [sys.executable, "-m", "embeddings.evaluate", "--run", str(run), "--split", "test",
            "--data", data, "--json"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
        raise RuntimeError(f"{shlex.join(argv)} exited with status {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return float(result["accuracy"]), result


def measure(case: Case, data: str, folder: Path, repeat: int) -> None:
    """Train ``case`` once, score it on the test reviews and append the figures to it.

    Args:
        case (Case): the case to measure.
        data (str): the IMDb source.
        folder (Path): where runs and logs go (a temporary folder).
        repeat (int): the round, which names the run directory and the log.

    Raises:
        InvalidInput: a training or evaluation refused its flags or data (exit status 2).
        RuntimeError: a training or evaluation failed otherwise.
    """
    out = folder / f"{case.name}-{repeat}"
    log = folder / f"{case.name}-{repeat}.log"
    if case.kind == "preset":
        process = spawn(case.command(str(out)), log)
        accuracy, evaluation = score_run(out, data)
        shutil.rmtree(out)  # a bigrams run holds a 500,000-row embedding
        detail = {"reviews": evaluation.get("reviews")}
        peak = process.peak_rss_kib
    else:
        process = spawn(case.command(str(out)), log, marker="trained")
        trained, scored = (next(e for e in process.events if e.get("event") == kind)
                           for kind in ("trained", "scored"))
        accuracy = float(scored["accuracy"])
        detail = {**{k: v for k, v in trained.items() if k not in ("event", "peak_rss_kib")},
                  "reviews": scored["n_test"], "n_test_not_utf8": scored["n_test_not_utf8"],
                  "process_peak_rss_kib": process.peak_rss_kib}
        peak = int(trained["peak_rss_kib"])
    case.wall_s.append(process.wall_s)
    case.peak_rss_kib.append(peak)
    case.accuracy.append(accuracy)
    case.details.append(detail)


def case_report(case: Case) -> dict[str, Any]:
    """The report's entry of one measured case (see the module docstring)."""
    entry: dict[str, Any] = {
        "kind": case.kind,
        "command": shlex.join(case.command(f"<tmpdir>/{case.name}-<i>")),
        "wall": stats(case.wall_s),
        "peak_rss_mib": max(case.peak_rss_kib) / MIB,
        "peak_rss_mib_each": [k / MIB for k in case.peak_rss_kib],
        "test_accuracy": case.accuracy,
        "test_accuracy_median": statistics.median(case.accuracy),
        "test_reviews": case.details[0]["reviews"],
    }
    if case.kind == "fasttext":
        first = case.details[0]
        entry["fasttext"] = {"wordNgrams": FASTTEXT[case.name]["wordNgrams"],
                             "epoch": FASTTEXT[case.name]["epoch"],
                             "dim": first["dim"], "lr": first["lr"], "bucket": first["bucket"],
                             "words": first["n_words"]}
        entry["train_reviews"] = first["n_train"]
        entry["process_peak_rss_mib"] = max(d["process_peak_rss_kib"]
                                            for d in case.details) / MIB
        entry["phases_s"] = {p: [d[p] for d in case.details]
                             for p in ("read_s", "preprocess_s", "train_s")}
    return entry


def summary(cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each measured case's median time over :data:`BASELINE`'s, the fastest and the most
    accurate case (by median test accuracy)."""
    measured = {name: c for name, c in cases.items() if "wall" in c}
    base = measured.get(BASELINE)
    return {
        "baseline": BASELINE if base else None,
        "wall_ratio_to_baseline": {
            name: c["wall"]["median_s"] / base["wall"]["median_s"] if base else None
            for name, c in measured.items()},
        "fastest": min(measured, key=lambda n: measured[n]["wall"]["median_s"]),
        "most_accurate": max(measured, key=lambda n: measured[n]["test_accuracy_median"]),
        "smallest_peak_rss": min(measured, key=lambda n: measured[n]["peak_rss_mib"]),
    }


def environment() -> dict[str, Any]:
    """The shared environment record plus fastText's installed version and
    ``MALLOC_PERTURB_`` (see :mod:`benchmarks._fasttext_worker`)."""
    env = common.environment()
    env["fasttext"] = common.installed_version("fasttext-numpy2") or \
        common.installed_version("fasttext")
    env["environment_variables"]["MALLOC_PERTURB_"] = os.environ.get("MALLOC_PERTURB_")
    return env


def default_out() -> Path:
    """``benchmarks/reports/accuracy-<host>-<UTC date>.json``."""
    return common.default_out("accuracy")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag or a bad value (status 2; the valid flags are listed).
    """
    parser = ArgumentParser(prog="python -m benchmarks.accuracy",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EMBEDDINGS_DATA") or None,
                        help="aclImdb folder or tarball with train/ and test/ (default: "
                             "$EMBEDDINGS_DATA)")
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="comma-separated training presets of embeddings.train "
                             f"(default: {','.join(PRESETS)})")
    parser.add_argument("--train-args", default="",
                        help="more flags for every embeddings.train run, as one shell "
                             "line, e.g. '--device cpu' (one flag alone: "
                             "--train-args=--deterministic)")
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help="rounds of every case (default: 3)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="fastText's threads (default: 2)")
    parser.add_argument("--skip-fasttext", action="store_true", help="measure our presets only")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/accuracy-<host>-<date>"
                             ".json)")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data is required: an aclImdb folder or tarball with train/ and test/. "
                     "Received: no --data and no EMBEDDINGS_DATA; pass --data "
                     "aclImdb_v1.tar.gz")
    for flag in ("repeats", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1. Received: --{flag}="
                         f"{getattr(args, flag)}")
    presets = list(dict.fromkeys(p.strip() for p in args.presets.split(",") if p.strip()))
    if not presets and args.skip_fasttext:
        parser.error("--presets names no preset and --skip-fasttext leaves out fastText: "
                     f"nothing to measure. Received: --presets={args.presets!r}")
    clash = sorted(set(presets) & set(FASTTEXT))
    if clash:
        parser.error(f"--presets must not use fastText's case names {', '.join(FASTTEXT)}. "
                     f"Received: --presets={args.presets}")
    args.presets = presets
    args.train_args = common.train_args(parser, args.train_args, RESERVED_TRAIN_FLAGS,
                                        "--presets and --data")
    return args


def _absolute(data: str) -> str:
    """A local ``--data`` path made absolute (the processes run from the repository)."""
    return str(Path(data).expanduser().resolve()) if Path(data).expanduser().exists() else data


def _table(report: dict[str, Any]) -> list[str]:
    """One line per case: median, min and max seconds, peak MiB, accuracies, ratio."""
    ratios = report["summary"]["wall_ratio_to_baseline"]
    lines = [f"{'case':<18} {'kind':<8} {'median s':>9} {'min s':>8} {'max s':>8} "
             f"{'peak MiB':>9}  {'test accuracy':<24} {'/' + BASELINE}"]
    for name, c in report["cases"].items():
        if "wall" not in c:
            lines.append(f"{name:<18} {c['kind']:<8} {c['skipped']}")
            continue
        wall, ratio = c["wall"], ratios.get(name)
        accuracy = " ".join(f"{a:.4f}" for a in c["test_accuracy"])
        lines.append(f"{name:<18} {c['kind']:<8} {wall['median_s']:9.2f} {wall['min_s']:8.2f} "
                     f"{wall['max_s']:8.2f} {c['peak_rss_mib']:9.0f}  {accuracy:<24} "
                     + ("n/a" if ratio is None else f"{ratio:.2f}x"))
    s = report["summary"]
    lines.append(f"fastest: {s['fastest']}; most accurate: {s['most_accurate']}; "
                 f"smallest peak memory: {s['smallest_peak_rss']}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Check the data, measure every case ``args.repeats`` times, write and print."""
    if not args.skip_fasttext:
        try:
            import fasttext  # noqa: F401  (the workers import it; fail here, before measuring)
        except ImportError as err:
            raise MissingExtra(f"fastText cannot be imported ({err}), so its cases cannot "
                               "run: pip install 'embeddings[bench]' (or fasttext-numpy2), or "
                               "pass --skip-fasttext to measure our presets only") from None
    data = _absolute(args.data)
    test, test_source = read_source(data, subset="test")  # refuses an unusable source now
    n_train = len(read_source(data, subset="train")[0])
    n_test = len(test)
    del test
    cases = [preset_case(p, data, args.train_args) for p in args.presets]
    if not args.skip_fasttext:
        cases += [fasttext_case(name, data, args.threads) for name in FASTTEXT]
    out = args.out or default_out()
    env = environment()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        for repeat in range(args.repeats):
            for case in cases:
                print(f"[{repeat + 1}/{args.repeats}] {case.name}: training", file=sys.stderr,
                      flush=True)
                measure(case, data, Path(tmp), repeat)
                print(f"[{repeat + 1}/{args.repeats}] {case.name}: {case.wall_s[-1]:.2f} s, "
                      f"peak {case.peak_rss_kib[-1] / MIB:.0f} MiB, test accuracy "
                      f"{case.accuracy[-1]:.4f}", file=sys.stderr, flush=True)
    entries = {case.name: case_report(case) for case in cases}
    if args.skip_fasttext:
        entries.update({name: {"kind": "fasttext", "skipped": "skipped: --skip-fasttext"}
                        for name in FASTTEXT})
    report: dict[str, Any] = {
        "benchmark": "accuracy",
        "environment": env,
        "data": {
            "source": test_source,
            "n_train_reviews": n_train,
            "n_test_reviews": n_test,
            "presets_train_on": "each preset's training subset of aclImdb/train (the "
                                "tutorial's: 20,000 reviews, 5,000 held out for validation)",
            "fasttext_trains_on": f"all {n_train} aclImdb/train reviews, shuffled (seed 0)",
            "test_on": f"the {n_test} aclImdb/test reviews",
        },
        "config": {
            "presets": args.presets,
            "train_args": args.train_args,
            "repeats": args.repeats,
            "fasttext_threads": args.threads,
            "order": "interleaved: every case once per round, in the order of cases",
            "wall": "time.perf_counter from Popen to the process's exit (presets) or to the "
                    "fastText worker's 'trained' line; scoring excluded",
            "peak_rss": "ru_maxrss of os.wait4 (presets) or of the fastText worker at its "
                        "'trained' line, MiB; max over repeats",
            "test_accuracy": "presets: embeddings.evaluate --split test accuracy (probability "
                             "> 0.5); fastText: predicted label == true label",
        },
        "cases": entries,
    }
    report["summary"] = summary(report["cases"])
    report["loadavg"] = {"before": list(load_before), "after": list(os.getloadavg())}
    common.write_json(out, report)
    for line in _table(report):
        print(line)
    print(f"report: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see the module docstring).

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0; 2 when the data, a flag or a preset is refused, or fastText is missing.
    """
    args = parse_args(argv)
    return cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
