"""TensorFlow's side of ``benchmarks.vectorizer``, run in TensorFlow's own interpreter.

It imports only the standard library, numpy and (inside :func:`main`) TensorFlow
and Keras, so it runs in an environment without torch or this package::

    /path/to/tf/python benchmarks/_tf_vectorizer.py --texts T.bin --n-train 20000 --out-dir D

For each configuration of :data:`MODES` named by ``--modes`` it times
``keras.layers.TextVectorization`` (10,000 tokens; the tutorial's custom
standardization unless ``--standardize`` says otherwise): ``adapt`` on
``tf.data.Dataset.from_tensor_slices(train).batch(1024)``, then the layer on
every text in batches of 1024, each batch turned into a NumPy array and dropped
(a ``multi_hot`` output of all 25,000 texts would take 2 GB as int64).  The Python
``bytes`` are the input of both phases, so turning them into tensors is part of
the timed work, as building Arrow arrays is on our side; that conversion is
also timed alone.  One untimed warm-up per configuration comes first, and it
records what :class:`OutputCheck` keeps of each output batch.

It prints one JSON object on the last line of stdout and writes, into
``--out-dir``, per configuration ``vocabulary-<mode>.bin`` (the vocabulary as
exact bytes, in the format of :func:`write_texts`) and the arrays of
:meth:`OutputCheck.save`.

The texts file format (also used for the vocabulary) is length-prefixed, so
nothing is ever unpickled: the 8 bytes ``MAGIC``, a little-endian uint64
count, then per item a little-endian uint64 length and that many bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import string
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAGIC = b"EMBTXT1\n"
_U64 = struct.Struct("<Q")
# The configurations, one report row each: name -> (output_mode, ngrams).
MODES: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "int": ("int", None),  # the tutorial's layer
    "int_bigrams": ("int", (1, 2)),
    "multi_hot": ("multi_hot", None),
    "count": ("count", None),
    "tf_idf": ("tf_idf", None),
    "tf_idf_bigrams": ("tf_idf", (1, 2)),
}
STANDARDIZE = ("tutorial", "lower_and_strip_punctuation")


def layer_arguments(mode: str, max_tokens: int, sequence_length: int) -> dict[str, Any]:
    """The constructor arguments both sides give their layer, ``standardize`` aside.

    Args:
        mode (str): a key of :data:`MODES`.
        max_tokens (int): vocabulary size.
        sequence_length (int): ``output_sequence_length`` of the ``int`` modes.

    Returns:
        dict[str, Any]: ``max_tokens``, ``output_mode``, ``ngrams`` and, in ``int``
        mode, ``output_sequence_length``.
    """
    output_mode, ngrams = MODES[mode]
    arguments: dict[str, Any] = {"max_tokens": max_tokens, "output_mode": output_mode,
                                 "ngrams": ngrams}
    if output_mode == "int":
        arguments["output_sequence_length"] = sequence_length
    return arguments


class OutputCheck:
    """What each side keeps of its output batches, so that the two can be compared.

    ``int`` batches are kept whole (25,000 x 100 int64 is 20 MB).  A batch of the
    other modes, ``(B, depth)``, is first cast to float32 (Keras 3.15 on TensorFlow
    returns int64 for ``multi_hot`` and ``count``; the cast is exact below 2**24),
    then it keeps column 0 (the OOV entry, where TensorFlow's ``tf_idf`` weight may
    differ by an ulp or two) and a SHA-256 of the rest, so the check is complete and
    holds one batch at a time, not 1 GB.

    Args:
        ids (bool): the outputs are ``int`` mode ids.
    """

    def __init__(self, ids: bool) -> None:
        self.keep_ids = ids
        self.dtype: str | None = None
        self.oov_weight: float | None = None  # tf_idf: the OOV id's IDF weight
        self.ids: list[Any] = []
        self.column0: list[Any] = []
        self.digests: list[str] = []

    def add(self, out: Any) -> None:
        """Record one output batch (a NumPy array, ``(B, T)`` or ``(B, depth)``)."""
        self.dtype = self.dtype or str(out.dtype)
        if self.keep_ids:
            self.ids.append(out)
            return
        out = out.astype("float32", copy=False)
        digest = hashlib.sha256(f"{tuple(out.shape)}".encode())
        digest.update(out[:, 1:].tobytes())
        self.column0.append(out[:, 0].copy())
        self.digests.append(digest.hexdigest())

    def arrays(self) -> dict[str, Any]:
        """``ids`` ``(N, T)`` or ``column0`` ``(N,)``: the batches concatenated."""
        import numpy as np

        if self.keep_ids:
            return {"ids": np.concatenate(self.ids) if self.ids else
                    np.zeros((0, 0), np.int64)}
        return {"column0": np.concatenate(self.column0) if self.column0 else
                np.zeros(0, np.float32)}

    def save(self, out_dir: Path, mode: str) -> None:
        """Write ``<ids|column0>-<mode>.npy`` into ``out_dir``."""
        import numpy as np

        for name, array in self.arrays().items():
            np.save(out_dir / f"{name}-{mode}.npy", np.ascontiguousarray(array),
                    allow_pickle=False)

    @classmethod
    def load(cls, out_dir: Path, mode: str, digests: list[str], dtype: str,
             oov_weight: float | None = None) -> OutputCheck:
        """What :meth:`save` wrote, with the rest from the JSON result."""
        import numpy as np

        check = cls(MODES[mode][0] == "int")
        check.dtype, check.oov_weight = dtype, oov_weight
        ids, column0 = out_dir / f"ids-{mode}.npy", out_dir / f"column0-{mode}.npy"
        if ids.is_file():
            check.ids = [np.load(ids, allow_pickle=False)]
        if column0.is_file():
            check.column0 = [np.load(column0, allow_pickle=False)]
        check.digests = list(digests)
        return check


def write_texts(path: str | os.PathLike[str], items: Sequence[bytes]) -> None:
    """Write byte strings in the length-prefixed format.

    Args:
        path (str | os.PathLike): file to write.
        items (Sequence[bytes]): the byte strings, in order.

    Raises:
        TypeError: an item is not ``bytes``.
    """
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(_U64.pack(len(items)))
        for item in items:
            if not isinstance(item, bytes):
                raise TypeError(f"items must be bytes. Received: a {type(item).__name__}")
            f.write(_U64.pack(len(item)))
            f.write(item)


def read_texts(path: str | os.PathLike[str]) -> list[bytes]:
    """Read byte strings written by :func:`write_texts`.

    Args:
        path (str | os.PathLike): file to read.

    Returns:
        list[bytes]: the byte strings, in order.

    Raises:
        ValueError: the file is not in this format or is truncated.
    """
    data = Path(path).read_bytes()
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not a length-prefixed texts file (bad magic).")
    pos = len(MAGIC)
    (count,) = _U64.unpack_from(data, pos)
    pos += _U64.size
    items = []
    for _ in range(count):
        (size,) = _U64.unpack_from(data, pos)
        pos += _U64.size
        if pos + size > len(data):
            raise ValueError(f"{path} is truncated: an item runs past the end of the file.")
        items.append(data[pos : pos + size])
        pos += size
    if pos != len(data):
        raise ValueError(f"{path} has {len(data) - pos} trailing bytes after {count} items.")
    return items


def exact_vocabulary(layer: Any, output_mode: str) -> tuple[list[bytes], str]:
    """The layer's vocabulary as exact bytes, and where it came from.

    ``get_vocabulary()`` decodes strictly and fails on tokens that are not UTF-8, so
    it is rebuilt from the lookup table as ``get_vocabulary`` does: ``''`` and
    ``'[UNK]'`` first in ``int`` mode, ``'[UNK]'`` alone otherwise.
    """
    try:
        keys, values = layer._lookup_layer.lookup_table.export()
    except AttributeError:
        return [t.encode("utf-8") for t in layer.get_vocabulary()], "get_vocabulary"
    by_id = dict(zip(values.numpy().tolist(), keys.numpy().tolist(), strict=True))
    vocab = [by_id.get(i, b"[UNK]") for i in range(layer.vocabulary_size())]
    if output_mode == "int":
        vocab[0] = b""
    return vocab, "lookup_table.export"


def main(argv: Sequence[str] | None = None) -> None:
    """Time TensorFlow's vectorizer and print the timings as JSON.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=Path, required=True, help="length-prefixed texts")
    parser.add_argument("--n-train", type=int, required=True, help="the first N texts adapt")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated MODES keys")
    parser.add_argument("--standardize", choices=STANDARDIZE, default="tutorial")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=10000)
    parser.add_argument("--sequence-length", type=int, default=100)
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown --modes {unknown}; valid: {', '.join(MODES)}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import numpy as np
    import tensorflow as tf

    all_bytes = read_texts(args.texts)
    train_bytes = all_bytes[: args.n_train]
    bs = args.batch_size

    def custom_standardization(input_data: tf.Tensor) -> tf.Tensor:  # the tutorial's, verbatim
        lowercase = tf.strings.lower(input_data)
        stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
        return tf.strings.regex_replace(
            stripped_html, "[%s]" % re.escape(string.punctuation), ""  # noqa: UP031
        )

    standardize = custom_standardization if args.standardize == "tutorial" else \
        args.standardize

    def adapt(layer: Any) -> None:
        layer.adapt(tf.data.Dataset.from_tensor_slices(train_bytes).batch(bs))

    def transform(layer: Any, check: OutputCheck | None = None) -> None:
        for i in range(0, len(all_bytes), bs):
            out = layer(tf.constant(all_bytes[i : i + bs])).numpy()
            if check is not None:
                check.add(out)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for mode in modes:
        arguments = layer_arguments(mode, args.max_tokens, args.sequence_length)

        def make_layer(arguments: dict[str, Any] = arguments) -> Any:
            return keras.layers.TextVectorization(standardize=standardize, **arguments)

        warm = make_layer()  # warm-up: untimed, and it records the outputs to compare
        adapt(warm)
        check = OutputCheck(arguments["output_mode"] == "int")
        transform(warm, check)
        vocab, vocab_source = exact_vocabulary(warm, arguments["output_mode"])
        if arguments["output_mode"] == "tf_idf":
            check.oov_weight = float(warm._lookup_layer.idf_weights_const.numpy()[0])
        write_texts(args.out_dir / f"vocabulary-{mode}.bin", vocab)
        check.save(args.out_dir, mode)
        dtype, digests, oov_weight = check.dtype, check.digests, check.oov_weight
        del warm, check

        times: dict[str, list[float]] = {"adapt": [], "transform": [], "total": []}
        for _ in range(args.repeats):
            layer = make_layer()  # a fresh layer per repetition
            t0 = time.perf_counter()
            adapt(layer)
            t1 = time.perf_counter()
            transform(layer)
            t2 = time.perf_counter()
            times["adapt"].append(t1 - t0)
            times["transform"].append(t2 - t1)
            times["total"].append(t2 - t0)
        results[mode] = {"times_s": times, "vocabulary_source": vocab_source,
                         "output_dtype": dtype, "digests": digests,
                         "oov_idf_weight": oov_weight}
        print(f"{mode}: total median {sorted(times['total'])[len(times['total']) // 2]:.2f} s",
              file=sys.stderr, flush=True)

    conversion = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        [tf.constant(all_bytes[i : i + bs]) for i in range(0, len(all_bytes), bs)]
        conversion.append(time.perf_counter() - start)

    result = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "standardize": args.standardize,
        "input_conversion_s": conversion,
        "n_texts": len(all_bytes),
        "n_train": len(train_bytes),
        "modes": results,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
