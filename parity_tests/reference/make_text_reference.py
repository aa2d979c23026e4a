"""Record Keras's ``TextVectorization`` on TensorFlow in every output mode, as fixtures.

Runs where the ``tf`` extra is installed (``nox -s parity_live``); the offline parity
tests replay the cases with :class:`embeddings.text.TextVectorization` and no TensorFlow.

What it writes into ``--out`` (default ``parity_tests/fixtures``):

* ``text_modes.json`` + ``.npz``: for every case of :mod:`text_cases` (strings built to
  break ports, each mode, standardization, split, n-grams, lengths, given vocabularies
  and the fuzzer's regressions), under its name and the SHA-256 of its JSON:
  TensorFlow's vocabulary (read from its lookup table, since ``get_vocabulary`` refuses
  bytes that are not UTF-8), its output and its IDF weights; or the error it raised.
* ``text_imdb.json`` + ``.npz``: with ``--data``, each mode on all 25,000 training reviews
  (adapt on them, then vectorize them in batches of 1,024): the vocabulary's SHA-256, the
  outputs' SHA-256 (for ``tf_idf`` without the OOV column, kept whole in the ``.npz``
  because TensorFlow's float32 mean may differ from the exact one by 2 ulp) and the IDF
  weights.

Usage::

    python parity_tests/reference/make_text_reference.py [--data aclImdb-train.tar.gz]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.files import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_reference import _meta, custom_standardization  # noqa: E402
from text_cases import cases  # noqa: E402

from parity_tests.text_compare import (  # noqa: E402
    IMDB_BATCH,
    IMDB_CASES,
    nested_bytes,
    output_digest,
    to_bytes,
    vocabulary_digest,
)


def write_json(path: Path, obj: object) -> None:
    """JSON with every non-ASCII character escaped: texts hold lone surrogates (bytes that
    are not UTF-8), which only escapes can carry."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=True) + "\n").encode())


def keras_layer(config: dict[str, Any], keras: Any, vocabulary: Any = None,
                idf_weights: Any = None) -> Any:
    """Keras's layer for a case's ``config`` (lists become tuples, as Keras wants)."""
    kwargs = dict(config)
    if kwargs.get("standardize") == "tutorial":
        kwargs["standardize"] = custom_standardization
    if isinstance(kwargs.get("ngrams"), list):
        kwargs["ngrams"] = tuple(kwargs["ngrams"])
    return keras.layers.TextVectorization(**kwargs, vocabulary=vocabulary,
                                          idf_weights=idf_weights)


def vocabulary_bytes(layer: Any) -> list[bytes]:
    """The layer's tokens in id order, as bytes, from its lookup table."""
    lookup = layer._lookup_layer
    size = layer.vocabulary_size()
    tokens: list[bytes] = [b""] * size
    specials = [b"", b"[UNK]"] if lookup.output_mode == "int" else [b"[UNK]"]
    tokens[: len(specials)] = specials
    if lookup.lookup_table.size() > 0:
        keys, values = lookup.lookup_table.export()
        for key, value in zip(keys.numpy().tolist(), values.numpy().tolist(), strict=True):
            tokens[value] = key
    return tokens


def run_case(case: dict[str, Any], tf: Any, keras: Any, workdir: Path) -> dict[str, Any]:
    """Run one case in Keras on TensorFlow: vocabulary, output and IDF, or the error."""
    config = case["config"]
    try:
        vocabulary = case.get("vocabulary")
        if isinstance(vocabulary, dict):
            path = workdir / "vocabulary.txt"
            path.write_bytes(to_bytes(vocabulary["file"]))
            vocabulary = str(path)
        elif vocabulary is not None and any("\udc80" <= c <= "\udcff"
                                            for t in vocabulary for c in t):
            # Tokens that are not UTF-8 reach TensorFlow only as bytes (then Keras does not
            # recognise special tokens in front: the cases put none there).
            vocabulary = np.array([to_bytes(t) for t in vocabulary], dtype=object)
        layer = keras_layer(config, keras, vocabulary, case.get("idf_weights"))
        if case.get("adapt") is not None:
            layer.adapt(tf.constant(nested_bytes(case["adapt"])))
        elif case.get("adapt_batches") is not None:
            batches: Iterator[Any] = iter([tf.constant(nested_bytes(b))
                                           for b in case["adapt_batches"]])
            layer.adapt(batches)
        output = layer(tf.constant(nested_bytes(case["inputs"])))
    except Exception as err:  # recorded: the engine must refuse the case too
        return {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    result: dict[str, Any] = {"vocabulary": vocabulary_bytes(layer)}
    if isinstance(output, tf.RaggedTensor):
        result["ragged"] = output.to_list()
    else:
        result["output"] = output.numpy()
    if config.get("output_mode") == "tf_idf":
        result["idf"] = layer._lookup_layer.idf_weights.numpy()
    return result


def case_digest(case: dict[str, Any]) -> str:
    """SHA-256 of a case's JSON: the offline test checks that its case is the recorded one."""
    return hashlib.sha256(json.dumps(case, sort_keys=True, ensure_ascii=True).encode()
                          ).hexdigest()


def _decoded(tokens: list[bytes]) -> list[str]:
    return [t.decode("utf-8", "surrogateescape") for t in tokens]


def record_cases(out: Path, tf: Any, keras: Any, meta: dict[str, Any]) -> None:
    records, arrays = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases()):
            result = run_case(case, tf, keras, Path(tmp))
            record: dict[str, Any] = {"name": case["name"], "case_sha256": case_digest(case)}
            if "error" in result:
                record["error"] = result["error"]
            else:
                record["tf_vocabulary"] = _decoded(result["vocabulary"])
                if "ragged" in result:
                    record["tf_ragged"] = result["ragged"]
                else:
                    arrays[f"{i}.output"] = result["output"]
                if "idf" in result:
                    arrays[f"{i}.idf"] = result["idf"]
            records.append(record)
    write_json(out / "text_modes.json", {"meta": meta, "cases": records})
    np.savez_compressed(out / "text_modes.npz.tmp.npz", **arrays)
    os.replace(out / "text_modes.npz.tmp.npz", out / "text_modes.npz")
    errors = sum("error" in r for r in records)
    print(f"wrote {out / 'text_modes.json'}: {len(records)} cases, {errors} refused by TF",
          flush=True)


def record_imdb(data: Path, out: Path, tf: Any, keras: Any, meta: dict[str, Any]) -> None:
    from embeddings.data import read_source

    reviews, _ = read_source(str(data))
    texts = [r.raw for r in reviews]
    records, arrays = {}, {}
    for name, config in IMDB_CASES.items():
        layer = keras_layer(config, keras)
        layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(IMDB_BATCH))
        tokens = vocabulary_bytes(layer)
        tf_idf = config.get("output_mode") == "tf_idf"
        digest, oov = output_digest(
            (layer(tf.constant(texts[i:i + IMDB_BATCH])).numpy() for i in range(0, len(texts),
                                                                           IMDB_BATCH)), tf_idf)
        records[name] = {"config": config, "vocabulary_size": len(tokens),
                         "vocabulary_sha256": vocabulary_digest(tokens),
                         "vocabulary_head": _decoded(tokens[:30]), "output_sha256": digest}
        if tf_idf:
            arrays[f"{name}.idf"] = layer._lookup_layer.idf_weights.numpy()
            arrays[f"{name}.oov"] = oov
        print(f"  imdb {name}: {len(tokens)} tokens", flush=True)
    write_json(out / "text_imdb.json", {"meta": meta, "reviews": len(texts),
                                                "batch": IMDB_BATCH, "cases": records})
    np.savez_compressed(out / "text_imdb.npz.tmp.npz", **arrays)
    os.replace(out / "text_imdb.npz.tmp.npz", out / "text_imdb.npz")
    print(f"wrote {out / 'text_imdb.json'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="aclImdb folder or tarball (IMDb cases)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "fixtures")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {**_meta(tf, keras), "made_by": "parity_tests/reference/make_text_reference.py"}
    record_cases(args.out, tf, keras, meta)
    if args.data is not None:
        record_imdb(args.data, args.out, tf, keras, meta)


if __name__ == "__main__":
    main()
