"""TensorFlow's side of ``benchmarks.vectorizer``, run in TensorFlow's own interpreter.

It imports only the standard library, numpy and (inside :func:`main`) TensorFlow
and Keras, so it runs in an environment without torch or this package::

    /path/to/tf/python benchmarks/_tf_vectorizer.py --texts T.bin --n-train 20000 --out-dir D

It times the tutorial's ``keras.layers.TextVectorization`` (custom
standardization, 10,000 tokens, sequences of 100): ``adapt`` on
``tf.data.Dataset.from_tensor_slices(train).batch(1024)``, then the layer on
every text in batches of 1024, concatenated.  The Python ``bytes`` are the
input of both phases, so turning them into tensors is part of the timed work,
as building Arrow arrays is on our side; that conversion is also timed alone.

It prints one JSON object on the last line of stdout and writes, into
``--out-dir``, ``vocabulary.bin`` (the last vocabulary, as exact bytes, in the
format of :func:`write_texts`) and ``ids.npy`` (the last ``(N, T)`` int64 ids).

The texts file format (also used for the vocabulary) is length-prefixed, so
nothing is ever unpickled: the 8 bytes ``MAGIC``, a little-endian uint64
count, then per item a little-endian uint64 length and that many bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MAGIC = b"EMBTXT1\n"
_U64 = struct.Struct("<Q")


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


def main(argv: Sequence[str] | None = None) -> None:
    """Time TensorFlow's vectorizer and print the timings as JSON.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=Path, required=True, help="length-prefixed texts")
    parser.add_argument("--n-train", type=int, required=True, help="the first N texts adapt")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=10000)
    parser.add_argument("--sequence-length", type=int, default=100)
    args = parser.parse_args(argv)

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

    def make_layer() -> Any:
        return keras.layers.TextVectorization(
            standardize=custom_standardization,
            max_tokens=args.max_tokens,
            output_mode="int",
            output_sequence_length=args.sequence_length,
        )

    def adapt(layer: Any) -> None:
        layer.adapt(tf.data.Dataset.from_tensor_slices(train_bytes).batch(bs))

    def transform(layer: Any) -> np.ndarray:
        outs = [layer(tf.constant(all_bytes[i : i + bs])) for i in range(0, len(all_bytes), bs)]
        return tf.concat(outs, axis=0).numpy()

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result

    # Warm-up: one untimed adapt + transform on a fresh layer.
    warm = make_layer()
    adapt(warm)
    transform(warm)

    times: dict[str, list[float]] = {"adapt": [], "transform": [], "total": []}
    ids = np.zeros((0, 0), dtype=np.int64)
    layer = warm
    for _ in range(args.repeats):
        layer = make_layer()  # a fresh layer per repetition
        t0 = time.perf_counter()
        adapt(layer)
        t1 = time.perf_counter()
        ids = transform(layer)
        t2 = time.perf_counter()
        times["adapt"].append(t1 - t0)
        times["transform"].append(t2 - t1)
        times["total"].append(t2 - t0)

    conversion = [
        timed(lambda: [tf.constant(all_bytes[i : i + bs]) for i in range(0, len(all_bytes), bs)])[0]
        for _ in range(args.repeats)
    ]

    # The vocabulary as exact bytes: get_vocabulary() decodes strictly and fails on
    # tokens that are not UTF-8, so rebuild it from the lookup table as it does.
    try:
        keys, values = layer._lookup_layer.lookup_table.export()
        by_id = dict(zip(values.numpy().tolist(), keys.numpy().tolist(), strict=True))
        vocab = [by_id.get(i, b"[UNK]") for i in range(layer.vocabulary_size())]
        vocab[0] = b""
        vocab_source = "lookup_table.export"
    except AttributeError:
        vocab = [t.encode("utf-8") for t in layer.get_vocabulary()]
        vocab_source = "get_vocabulary"

    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_texts(args.out_dir / "vocabulary.bin", vocab)
    np.save(args.out_dir / "ids.npy", np.ascontiguousarray(ids, dtype=np.int64), allow_pickle=False)

    result = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "vocabulary_source": vocab_source,
        "times_s": times,
        "input_conversion_s": conversion,
        "n_texts": len(all_bytes),
        "n_train": len(train_bytes),
        "ids_shape": list(ids.shape),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
