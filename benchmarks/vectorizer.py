"""Time our ``TextVectorization`` against Keras's on the IMDb training reviews.

Usage::

    python -m benchmarks.vectorizer [--data PATH] [--out REPORT.json] [--repeats 5]
                                    [--tf-python PATH]

Both sides do the tutorial's work: ``adapt`` on the 20,000 training texts
(10,000 tokens, the tutorial's custom standardization), then vectorize all
25,000 texts (training + validation) to ``(N, T)`` int64 ids, ``T = 100``.
Each side gets one untimed warm-up, then ``--repeats`` repetitions, each on a
fresh vectorizer, timed with ``time.perf_counter`` at three points, so a
repetition gives the ``adapt``, ``transform`` and ``total`` (adapt + transform)
times.  ``torch.utils.benchmark.Timer`` is not used: the TensorFlow side runs
without torch and both sides must be timed the same way.

TensorFlow runs in a subprocess (``benchmarks/_tf_vectorizer.py``) under
``--tf-python`` (default: this interpreter if it can import ``tensorflow``), fed
the exact bytes through a length-prefixed file.  It also checks that TF's
vocabulary and ids equal ours.  Without TensorFlow only our side is measured
and the report says why.

The JSON report (default ``benchmarks/reports/vectorizer-<host>-<date>.json``)
holds the environment, the data, per-phase median/min/max seconds and the
TF/ours ratios of the medians.  Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks import common
from benchmarks._tf_vectorizer import read_texts, write_texts
from benchmarks.common import stats
from embeddings.data import exact_texts, load_imdb
from embeddings.errors import ArgumentParser
from embeddings.text import TextVectorization

# Defaults: the tutorial's vectorizer and batch size.
MAX_TOKENS = 10000  # V
SEQUENCE_LENGTH = 100  # T
BATCH_SIZE = 1024  # the tutorial adapts and vectorizes in batches of 1024
REPEATS = 5
PHASES = ("adapt", "transform", "total")
TF_TIMEOUT_S = 3600
REPO = common.REPO
TF_SCRIPT = Path(__file__).with_name("_tf_vectorizer.py")


def _to_bytes(text: str | bytes) -> bytes:
    """A text as the bytes TensorFlow sees (``str`` via UTF-8 with ``surrogateescape``)."""
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def time_ours(
    train_texts: Sequence[str | bytes], all_texts: Sequence[str | bytes], repeats: int
) -> tuple[dict[str, list[float]], TextVectorization, np.ndarray]:
    """Time our vectorizer: one warm-up, then ``repeats`` fresh adapt + transform runs.

    Args:
        train_texts (Sequence[str | bytes]): texts to adapt on.
        all_texts (Sequence[str | bytes]): texts to vectorize.
        repeats (int): timed repetitions.

    Returns:
        tuple[dict[str, list[float]], TextVectorization, np.ndarray]: seconds per phase
        and repetition, the last vectorizer, and its ids of shape ``(N, T)``.
    """

    def make() -> TextVectorization:
        return TextVectorization(
            max_tokens=MAX_TOKENS, standardize="tutorial", output_sequence_length=SEQUENCE_LENGTH
        )

    vec = make()  # warm-up
    vec.adapt(train_texts)
    ids = vec(all_texts)
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(repeats):
        vec = make()
        t0 = time.perf_counter()
        vec.adapt(train_texts)
        t1 = time.perf_counter()
        ids = vec(all_texts)
        t2 = time.perf_counter()
        times["adapt"].append(t1 - t0)
        times["transform"].append(t2 - t1)
        times["total"].append(t2 - t0)
    return times, vec, ids


def default_tf_python() -> str | None:
    """This interpreter if it can import ``tensorflow``, else ``None``."""
    return sys.executable if importlib.util.find_spec("tensorflow") is not None else None


def time_tf(
    tf_python: str, all_texts: Sequence[bytes], n_train: int, repeats: int
) -> tuple[dict[str, Any], list[bytes], np.ndarray]:
    """Run ``_tf_vectorizer.py`` under ``tf_python`` and collect its results.

    Args:
        tf_python (str): an interpreter with TensorFlow and Keras.
        all_texts (Sequence[bytes]): texts to vectorize.
        n_train (int): the first ``n_train`` texts are the ones to adapt on.
        repeats (int): timed repetitions.

    Returns:
        tuple[dict[str, Any], list[bytes], np.ndarray]: the script's JSON result, TF's
        vocabulary as bytes, and its ids of shape ``(N, T)``.

    Raises:
        RuntimeError: the subprocess failed; the message holds its stderr's tail.
    """
    with tempfile.TemporaryDirectory(prefix="bench-vectorizer-") as tmp:
        texts_file = Path(tmp) / "texts.bin"
        write_texts(texts_file, list(all_texts))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
        cmd = [
            tf_python, str(TF_SCRIPT), "--texts", str(texts_file), "--n-train",
            str(n_train), "--out-dir", tmp, "--repeats", str(repeats),
            "--batch-size", str(BATCH_SIZE), "--max-tokens", str(MAX_TOKENS),
            "--sequence-length", str(SEQUENCE_LENGTH),
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=TF_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RuntimeError(f"Cannot run {tf_python}: {err}") from err
        if proc.returncode != 0:
            raise RuntimeError(
                f"{tf_python} {TF_SCRIPT.name} exited with {proc.returncode}:\n"
                + proc.stderr[-3000:]
            )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"{TF_SCRIPT.name} printed no JSON. stdout: {proc.stdout[-2000:]}")
        result = json.loads(lines[-1])
        vocab = read_texts(Path(tmp) / "vocabulary.bin")
        ids = np.load(Path(tmp) / "ids.npy", allow_pickle=False)
    return result, vocab, ids


def environment() -> dict[str, Any]:
    """The shared environment record plus pyarrow and the hash of ``embeddings/text.py``."""
    text_py = REPO / "embeddings" / "text.py"
    env = common.environment()
    env.update({
        "pyarrow": pa.__version__,
        "pyarrow_cpu_count": pa.cpu_count(),
        "text_py_sha256": hashlib.sha256(text_py.read_bytes()).hexdigest()
        if text_py.is_file() else None,
    })
    return env


def _summary(impl: str, phase: str, n: str, median_s: float, spread: tuple[float, float]) -> str:
    return (
        f"impl={impl:<4} device=cpu dtype=int64 phase={phase:<9} N={n} T={SEQUENCE_LENGTH} "
        f"V={MAX_TOKENS} median_ms={median_s * 1e3:9.1f} "
        f"(min {spread[0] * 1e3:.1f}, max {spread[1] * 1e3:.1f})"
    )


def _counts(phase: str, n_train: int, n_all: int) -> str:
    """Texts a phase handles: adapt ``n_train``, transform ``n_all``, total both."""
    return {"adapt": str(n_train), "transform": str(n_all)}.get(phase, f"{n_train}+{n_all}")


def _first_difference(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any] | None:
    """Where two id arrays first differ, or ``None`` when equal."""
    if ours.shape != theirs.shape:
        return {"shape_ours": list(ours.shape), "shape_tf": list(theirs.shape)}
    rows = np.flatnonzero((ours != theirs).any(axis=1))
    if rows.size == 0:
        return None
    r = int(rows[0])
    return {"rows_differing": int(rows.size), "first_row": r,
            "ours": ours[r].tolist(), "tf": theirs[r].tolist()}


def _first_token_difference(ours: list[bytes], theirs: list[bytes]) -> dict[str, Any]:
    """Where two vocabularies first differ; tokens shown as ``repr`` of their bytes."""
    pairs = zip(ours, theirs, strict=False)
    i = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(ours), len(theirs)))
    return {
        "index": i,
        "ours": repr(ours[i]) if i < len(ours) else None,
        "tf": repr(theirs[i]) if i < len(theirs) else None,
    }


def default_out() -> Path:
    """``benchmarks/reports/vectorizer-<host>-<UTC date>.json``."""
    return common.default_out("vectorizer")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag or a bad value (argparse prints the valid ones).
    """
    parser = ArgumentParser(
        prog="python -m benchmarks.vectorizer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", default=None,
                        help="aclImdb directory or tarball (default: $EMBEDDINGS_DATA, then the "
                             "package's fallbacks)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/vectorizer-<host>-<date>"
                             ".json)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed repetitions")
    parser.add_argument("--tf-python", default=None,
                        help="interpreter with TensorFlow (default: this one if it has it)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: --repeats={args.repeats}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print a summary and write the report.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0, or 1 when an explicitly given ``--tf-python`` failed.
    """
    args = parse_args(argv)
    out = args.out or default_out()
    env = environment()
    load_before = os.getloadavg()

    source = args.data if args.data is not None else os.environ.get("EMBEDDINGS_DATA")
    train, val = load_imdb(source)
    train_texts = exact_texts(train)
    all_texts = train_texts + exact_texts(val)
    all_bytes = [_to_bytes(t) for t in all_texts]
    n_train, n_all = len(train_texts), len(all_texts)

    ours_times, vec, ours_ids = time_ours(train_texts, all_texts, args.repeats)
    report: dict[str, Any] = {
        "benchmark": "vectorizer",
        "environment": env,
        "data": {
            "source": str(source) if source is not None else "default fallbacks",
            "n_adapt": n_train,
            "n_transform": n_all,
            "n_bytes_texts": sum(map(len, all_bytes)),
            "n_texts_not_utf8": sum(isinstance(t, bytes) for t in all_texts),
        },
        "config": {
            "max_tokens": MAX_TOKENS,
            "output_sequence_length": SEQUENCE_LENGTH,
            "standardize": "tutorial",
            "tf_batch_size": BATCH_SIZE,
            "repeats": args.repeats,
            "warmup": 1,
            "timer": "time.perf_counter; adapt, transform and total from one run per repetition",
            "ours_input": "list of str/bytes, transformed in one call",
            "tf_input": "list of bytes; adapt on Dataset.from_tensor_slices(train).batch(1024), "
                        "transform as layer(tf.constant(batch)) per 1024, tf.concat; conversion "
                        "to tensors is inside the timings (also timed alone)",
        },
        "ours": {phase: stats(ours_times[phase]) for phase in PHASES},
    }
    lines = [_summary("ours", p, _counts(p, n_train, n_all),
                      report["ours"][p]["median_s"],
                      (report["ours"][p]["min_s"], report["ours"][p]["max_s"]))
             for p in PHASES]

    tf_python = args.tf_python or default_tf_python()
    status = 0
    if tf_python is None:
        note = ("TensorFlow skipped: this interpreter cannot import tensorflow; pass "
                "--tf-python /path/to/python of an environment with tensorflow and keras.")
        report["tf"] = {"skipped": note}
    else:
        try:
            result, tf_vocab, tf_ids = time_tf(tf_python, all_bytes, n_train, args.repeats)
        except RuntimeError as err:
            note = f"TensorFlow failed, not measured: {err}"
            report["tf"] = {"skipped": note, "tf_python": tf_python}
            status = 1 if args.tf_python else 0
        else:
            note = ""
            ours_vocab = [_to_bytes(t) for t in vec.get_vocabulary()]
            ids = ours_ids
            report["tf"] = {
                "tf_python": tf_python,
                **{k: v for k, v in result.items() if k not in ("times_s", "input_conversion_s")},
                **{phase: stats(result["times_s"][phase]) for phase in PHASES},
                "input_conversion": stats(result["input_conversion_s"]),
            }
            report["environment"]["tensorflow"] = result["tensorflow"]
            report["environment"]["keras"] = result["keras"]
            report["ratio_tf_over_ours"] = {
                phase: report["tf"][phase]["median_s"] / report["ours"][phase]["median_s"]
                for phase in PHASES
            }
            report["vocabulary_equal"] = ours_vocab == tf_vocab
            report["vocabulary_sizes"] = {"ours": len(ours_vocab), "tf": len(tf_vocab)}
            if not report["vocabulary_equal"]:
                report["vocabulary_first_difference"] = _first_token_difference(
                    ours_vocab, tf_vocab
                )
            report["sequences_equal"] = bool(ids.shape == tf_ids.shape and (ids == tf_ids).all())
            if not report["sequences_equal"]:
                report["sequences_first_difference"] = _first_difference(ids, tf_ids)
            lines += [_summary("tf", p, _counts(p, n_train, n_all),
                               report["tf"][p]["median_s"],
                               (report["tf"][p]["min_s"], report["tf"][p]["max_s"]))
                      for p in PHASES]
    report["loadavg"] = {"before": list(load_before), "after": list(os.getloadavg())}

    common.write_json(out, report)
    for line in lines:
        print(line)
    if "ratio_tf_over_ours" in report:
        ratios = report["ratio_tf_over_ours"]
        print("ratio tf/ours (medians): " + ", ".join(f"{p}={ratios[p]:.2f}x" for p in PHASES))
        print(f"vocabulary_equal={report['vocabulary_equal']} "
              f"sequences_equal={report['sequences_equal']}")
    if note:
        print(note)
    print(f"report: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
