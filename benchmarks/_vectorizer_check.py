"""Whether TensorFlow's vectorizer gave what ours gave, for ``benchmarks.vectorizer``.

Both sides record their warm-up's outputs with
:class:`~benchmarks._tf_vectorizer.OutputCheck`; :func:`compare_row` compares the
vocabularies (as bytes) and every output of every text:

* ``int`` rows: the ``(N, T)`` int64 ids, whole;
* other rows: the values as float32 (so TensorFlow's int64 ``multi_hot`` and ``count``
  compare with any dtype of ours, and the dtypes are reported apart), per batch a
  SHA-256 of all columns but 0, exact; column 0 (the OOV id) exactly too, except in
  ``tf_idf``: there TensorFlow's OOV weight is a float32 ``reduce_mean`` of the IDF
  weights, up to 2 ulp from ours, so column 0 (count times that weight, each product
  rounded once more) is compared with ``rtol = 3.5 * 2**-23``, the bound the parity tests
  hold it to (``parity_tests/text_compare.py``), and the two OOV weights are reported with
  their distance in ulps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks._tf_vectorizer import OutputCheck

TF_IDF_RTOL = 3.5 * 2.0**-23  # tf_idf column 0: a weight 2 ulp off, times counts, rounded


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


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in float32 ulps between two arrays of finite floats."""
    def ordered(x: np.ndarray) -> np.ndarray:  # float32 bits as integers in value order
        bits = x.astype(np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, np.int64(-2**31) - bits, bits)
    return int(np.abs(ordered(a) - ordered(b)).max(initial=0))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest ``|a - b| / |b|`` (0 where both are 0)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    scale = np.where(b64 == 0, 1.0, np.abs(b64))
    return float((np.abs(a64 - b64) / scale).max(initial=0.0))


def check_outputs(output_mode: str, ours: OutputCheck, theirs: OutputCheck) -> dict[str, Any]:
    """Compare both sides' records of every output batch.

    Args:
        output_mode (str): the layer's output mode.
        ours (OutputCheck): our warm-up's record.
        theirs (OutputCheck): TensorFlow's.

    Returns:
        dict[str, Any]: ``outputs_equal`` (the values), ``output_dtypes``, ``method``
        and where the outputs differ if they do.
    """
    a, b = ours.arrays(), theirs.arrays()
    out: dict[str, Any] = {"output_dtypes": {"ours": ours.dtype, "tf": theirs.dtype}}
    if output_mode == "int":
        difference = _first_difference(a["ids"], b["ids"])
        out.update(outputs_equal=difference is None,
                   method="int64 ids of all texts, compared whole")
        if difference is not None:
            out["first_difference"] = difference
        return out
    bad = [i for i, (x, y) in enumerate(zip(ours.digests, theirs.digests, strict=False))
           if x != y]
    rest_equal = not bad and len(ours.digests) == len(theirs.digests)
    c0, t0 = a["column0"], b["column0"]
    shape_equal = c0.shape == t0.shape
    exact = shape_equal and bool(np.array_equal(c0, t0))
    if output_mode == "tf_idf":
        column_equal = shape_equal and bool(np.allclose(c0, t0, rtol=TF_IDF_RTOL, atol=0.0))
        rule = f"column 0 with rtol={TF_IDF_RTOL}, atol=0 (TF's float32 mean of the IDF " \
               "weights)"
    else:
        column_equal, rule = exact, "column 0 exactly"
    out.update(outputs_equal=rest_equal and column_equal,
               method="all texts, values as float32: per batch a SHA-256 of the shape and "
                      f"columns 1.. (exact); {rule}",
               batches={"ours": len(ours.digests), "tf": len(theirs.digests)},
               columns_1_on_equal=rest_equal, column0_equal=column_equal,
               column0_exact=exact, column0_max_ulps=_ulps(c0, t0) if shape_equal else None,
               column0_max_relative_difference=_relative(c0, t0) if shape_equal else None)
    if ours.oov_weight is not None and theirs.oov_weight is not None:
        weights = np.array([ours.oov_weight, theirs.oov_weight], np.float32)
        out["oov_idf_weight"] = {"ours": ours.oov_weight, "tf": theirs.oov_weight,
                                 "ulps": _ulps(weights[:1], weights[1:])}
    if bad:
        out["batches_differing"] = bad
    return out


def compare_row(output_mode: str, ours_vocab: list[bytes], ours_out: OutputCheck,
                tf_vocab: list[bytes], tf_out: OutputCheck) -> dict[str, Any]:
    """The vocabulary and output comparison of one row.

    Args:
        output_mode (str): the layer's output mode.
        ours_vocab (list[bytes]): our vocabulary as bytes.
        ours_out (OutputCheck): our warm-up's record of its outputs.
        tf_vocab (list[bytes]): TensorFlow's vocabulary as bytes.
        tf_out (OutputCheck): TensorFlow's record.

    Returns:
        dict[str, Any]: ``vocabulary_equal`` and the fields of :func:`check_outputs`.
    """
    out: dict[str, Any] = {"vocabulary_equal": ours_vocab == tf_vocab,
                           "vocabulary_sizes": {"ours": len(ours_vocab), "tf": len(tf_vocab)}}
    if not out["vocabulary_equal"]:
        out["vocabulary_first_difference"] = _first_token_difference(ours_vocab, tf_vocab)
    out.update(check_outputs(output_mode, ours_out, tf_out))
    return out
