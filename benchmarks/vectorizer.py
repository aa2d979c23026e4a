"""Time our ``TextVectorization`` against Keras's on the IMDb training reviews, per mode.

Usage::

    python -m benchmarks.vectorizer [--data PATH] [--out REPORT.json] [--repeats 5]
                                    [--modes int,tf_idf,...] [--standardize tutorial]
                                    [--tf-python PATH]

One row per configuration of ``MODES`` (``--modes``, default all): ``int`` (the
tutorial's layer, sequences of ``T = 100``), ``int_bigrams`` (the same with
``ngrams=(1, 2)``), ``multi_hot``, ``count``, ``tf_idf`` and ``tf_idf_bigrams``
(``ngrams=(1, 2)``).  Every row uses 10,000 tokens and the tutorial's custom
standardization (``--standardize lower_and_strip_punctuation`` for Keras's
default), so that rows differ in the output mode and n-grams only.

Both sides do the same work: ``adapt`` on the 20,000 training texts, then
vectorize all 25,000 texts (training + validation) in batches of 1024, as the
tutorial's ``Dataset.map`` does; each output batch is dropped (the other modes make
a dense ``(1024, 10000)`` batch, 40 MB as float32 and 80 MB as the int64 that
TensorFlow returns for ``multi_hot`` and ``count``: 1-2 GB for all texts).  Each side gets one
untimed warm-up per row, then ``--repeats`` repetitions, each on a fresh
vectorizer, timed with ``time.perf_counter`` at three points, so a repetition
gives the ``adapt``, ``transform`` and ``total`` (adapt + transform) times.
``torch.utils.benchmark.Timer`` is not used: the TensorFlow side runs without
torch and both sides must be timed the same way.

TensorFlow runs in a subprocess (``benchmarks/_tf_vectorizer.py``) under
``--tf-python`` (default: this interpreter if it can import ``tensorflow``), fed
the exact bytes through a length-prefixed file.  The warm-ups of both sides record
every output batch (:class:`~benchmarks._tf_vectorizer.OutputCheck`) and the
report says per row whether TF's vocabulary and outputs equal ours
(:mod:`benchmarks._vectorizer_check`: every output of every text, ``tf_idf``'s
OOV column with ``rtol = 3.5 * 2**-23``, the rest exactly).  Without TensorFlow only our side is
measured and the report says why.

The JSON report (default ``benchmarks/reports/vectorizer-<host>-<date>.json``)
holds the environment, the data, and per row (``modes.<row>``) the layer's
arguments, per-phase median/min/max/IQR seconds of both sides, the TF/ours ratios
of the medians and the output check.  Timings are reported, never asserted.
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

import pyarrow as pa

from benchmarks import common
from benchmarks._tf_vectorizer import (
    MODES,
    STANDARDIZE,
    OutputCheck,
    layer_arguments,
    read_texts,
    write_texts,
)
from benchmarks._vectorizer_check import compare_row
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


def _transform(vec: TextVectorization, texts: Sequence[str | bytes],
               check: OutputCheck | None = None) -> None:
    """Vectorize ``texts`` in batches of ``BATCH_SIZE``, dropping each output batch."""
    for i in range(0, len(texts), BATCH_SIZE):
        out = vec(texts[i:i + BATCH_SIZE])
        if check is not None:
            check.add(out)


def time_ours(mode: str, standardize: str, train_texts: Sequence[str | bytes],
              all_texts: Sequence[str | bytes], repeats: int
              ) -> tuple[dict[str, list[float]], list[bytes], OutputCheck]:
    """Time our vectorizer in one configuration: a warm-up, then ``repeats`` fresh runs.

    Args:
        mode (str): a key of ``MODES``.
        standardize (str): the ``standardize`` argument.
        train_texts (Sequence[str | bytes]): texts to adapt on.
        all_texts (Sequence[str | bytes]): texts to vectorize.
        repeats (int): timed repetitions.

    Returns:
        tuple[dict[str, list[float]], list[bytes], OutputCheck]: seconds per phase and
        repetition, the vocabulary as bytes and the warm-up's record of its outputs.
    """
    arguments = layer_arguments(mode, MAX_TOKENS, SEQUENCE_LENGTH)

    def make() -> TextVectorization:
        return TextVectorization(standardize=standardize, **arguments)

    vec = make()  # warm-up: untimed, and it records the outputs to compare
    vec.adapt(train_texts)
    check = OutputCheck(arguments["output_mode"] == "int")
    _transform(vec, all_texts, check)
    vocabulary = [_to_bytes(t) for t in vec.get_vocabulary()]
    if vec.idf_weights is not None:
        check.oov_weight = float(vec.idf_weights[0])
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(repeats):
        vec = make()
        t0 = time.perf_counter()
        vec.adapt(train_texts)
        t1 = time.perf_counter()
        _transform(vec, all_texts)
        t2 = time.perf_counter()
        times["adapt"].append(t1 - t0)
        times["transform"].append(t2 - t1)
        times["total"].append(t2 - t0)
    return times, vocabulary, check


def default_tf_python() -> str | None:
    """This interpreter if it can import ``tensorflow``, else ``None``."""
    return sys.executable if importlib.util.find_spec("tensorflow") is not None else None


def time_tf(tf_python: str, modes: Sequence[str], standardize: str,
            all_texts: Sequence[bytes], n_train: int, repeats: int
            ) -> tuple[dict[str, Any], dict[str, tuple[list[bytes], OutputCheck]]]:
    """Run ``_tf_vectorizer.py`` under ``tf_python`` and collect its results.

    Args:
        tf_python (str): an interpreter with TensorFlow and Keras.
        modes (Sequence[str]): keys of ``MODES``.
        standardize (str): one of ``STANDARDIZE``.
        all_texts (Sequence[bytes]): texts to vectorize.
        n_train (int): the first ``n_train`` texts are the ones to adapt on.
        repeats (int): timed repetitions.

    Returns:
        tuple[dict[str, Any], dict[str, tuple[list[bytes], OutputCheck]]]: the script's
        JSON result, and per mode TF's vocabulary as bytes and its record of outputs.

    Raises:
        RuntimeError: the subprocess failed; the message holds its stderr's tail.
    """
    with tempfile.TemporaryDirectory(prefix="bench-vectorizer-") as tmp:
        out_dir = Path(tmp)
        texts_file = out_dir / "texts.bin"
        write_texts(texts_file, list(all_texts))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
        cmd = [
            tf_python, str(TF_SCRIPT), "--texts", str(texts_file), "--n-train",
            str(n_train), "--out-dir", tmp, "--repeats", str(repeats),
            "--modes", ",".join(modes), "--standardize", standardize,
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
        outputs = {
            mode: (read_texts(out_dir / f"vocabulary-{mode}.bin"),
                   OutputCheck.load(out_dir, mode, result["modes"][mode]["digests"],
                                    result["modes"][mode]["output_dtype"],
                                    result["modes"][mode].get("oov_idf_weight")))
            for mode in modes
        }
    return result, outputs


def environment() -> dict[str, Any]:
    """The shared environment record plus pyarrow and a hash of ``embeddings/text/``."""
    sources = sorted(p for p in (REPO / "embeddings" / "text").glob("*")
                     if p.suffix in (".py", ".c"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(f"{path.name}\0{len(path.read_bytes())}\0".encode())
        digest.update(path.read_bytes())
    env = common.environment()
    env.update({
        "pyarrow": pa.__version__,
        "pyarrow_cpu_count": pa.cpu_count(),
        "text_sources": [p.name for p in sources],
        "text_sources_sha256": digest.hexdigest() if sources else None,
    })
    return env


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
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated rows to measure, of {', '.join(MODES)} "
                             "(default: all)")
    parser.add_argument("--standardize", choices=STANDARDIZE, default="tutorial",
                        help="standardization of every row (default: tutorial)")
    parser.add_argument("--tf-python", default=None,
                        help="interpreter with TensorFlow (default: this one if it has it)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: --repeats={args.repeats}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"--modes must name rows of {', '.join(MODES)}, separated by commas. "
                     f"Received: --modes={args.modes}")
    args.modes = list(dict.fromkeys(modes))
    return args


def _line(mode: str, impl: str, entry: dict[str, Any]) -> str:
    medians = "  ".join(f"{entry[p]['median_s']:10.3f}" for p in PHASES)
    return f"{mode:<15} {impl:<7} {medians}"


def _dtypes(dtypes: dict[str, str | None]) -> str:
    """`` dtype ours=... tf=...`` when the two sides' output dtypes differ, else ``""``."""
    return "" if dtypes["ours"] == dtypes["tf"] else \
        f" (dtype ours={dtypes['ours']} tf={dtypes['tf']})"


def _summary(report: dict[str, Any]) -> list[str]:
    """One line per row and side (median seconds), and the TF/ours ratios."""
    lines = [f"device=cpu V={MAX_TOKENS} T={SEQUENCE_LENGTH} (int) batch={BATCH_SIZE} "
             f"N={report['data']['n_adapt']} adapt + {report['data']['n_transform']} "
             f"transform, median s of {report['config']['repeats']}",
             f"{'mode':<15} {'impl':<7} " + "  ".join(f"{p:>10}" for p in PHASES)]
    for mode, row in report["modes"].items():
        lines.append(_line(mode, "ours", row["ours"]))
        if "ratio_tf_over_ours" in row:
            lines.append(_line(mode, "tf", row["tf"]))
            ratios = row["ratio_tf_over_ours"]
            lines.append(f"{mode:<15} {'tf/ours':<7} "
                         + "  ".join(f"{ratios[p]:9.2f}x" for p in PHASES)
                         + f"  vocabulary_equal={row['check']['vocabulary_equal']} "
                         f"outputs_equal={row['check']['outputs_equal']}"
                         + _dtypes(row["check"]["output_dtypes"]))
    return lines


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
            "standardize": args.standardize,
            "batch_size": BATCH_SIZE,
            "repeats": args.repeats,
            "warmup": 1,
            "timer": "time.perf_counter; adapt, transform and total from one run per repetition",
            "ours_input": "adapt: the list of str/bytes in one call; transform: vec(texts[i:i "
                          "+ 1024]) per batch, each output dropped",
            "tf_input": "list of bytes; adapt on Dataset.from_tensor_slices(train).batch(1024), "
                        "transform as layer(tf.constant(batch)).numpy() per 1024, each output "
                        "dropped; conversion to tensors is inside the timings (also timed "
                        "alone)",
            "check": "made on the warm-up runs, never timed",
        },
        "modes": {},
    }
    checks: dict[str, tuple[list[bytes], OutputCheck]] = {}
    for mode in args.modes:
        times, vocabulary, check = time_ours(mode, args.standardize, train_texts, all_texts,
                                             args.repeats)
        arguments = layer_arguments(mode, MAX_TOKENS, SEQUENCE_LENGTH)
        report["modes"][mode] = {
            "layer": {"standardize": args.standardize, **arguments},
            "ours": {phase: stats(times[phase]) for phase in PHASES},
        }
        checks[mode] = (vocabulary, check)

    tf_python = args.tf_python or default_tf_python()
    status = 0
    note = ""
    if tf_python is None:
        note = ("TensorFlow skipped: this interpreter cannot import tensorflow; pass "
                "--tf-python /path/to/python of an environment with tensorflow and keras.")
        report["tf"] = {"skipped": note}
    else:
        try:
            result, tf_outputs = time_tf(tf_python, args.modes, args.standardize, all_bytes,
                                         n_train, args.repeats)
        except RuntimeError as err:
            note = f"TensorFlow failed, not measured: {err}"
            report["tf"] = {"skipped": note, "tf_python": tf_python}
            status = 1 if args.tf_python else 0
        else:
            report["tf"] = {
                "tf_python": tf_python,
                **{k: v for k, v in result.items() if k not in ("modes", "input_conversion_s")},
                "input_conversion": stats(result["input_conversion_s"]),
            }
            report["environment"]["tensorflow"] = result["tensorflow"]
            report["environment"]["keras"] = result["keras"]
            for mode, row in report["modes"].items():
                tf_mode = result["modes"][mode]
                row["tf"] = {phase: stats(tf_mode["times_s"][phase]) for phase in PHASES}
                row["tf"].update(vocabulary_source=tf_mode["vocabulary_source"],
                                 output_dtype=tf_mode["output_dtype"])
                row["ratio_tf_over_ours"] = {
                    phase: row["tf"][phase]["median_s"] / row["ours"][phase]["median_s"]
                    for phase in PHASES
                }
                row["check"] = compare_row(MODES[mode][0], *checks[mode], *tf_outputs[mode])
    if note:
        for row in report["modes"].values():
            row["tf"] = {"skipped": note}
    report["loadavg"] = {"before": list(load_before), "after": list(os.getloadavg())}

    common.write_json(out, report)
    for line in _summary(report):
        print(line)
    if note:
        print(note)
    print(f"report: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
