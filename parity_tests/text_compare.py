"""Run a text case (``reference/text_cases.py``) on our engine and compare it with
TensorFlow's record: shared by the offline parity tests and the live fuzzer.

Everything is compared for equality except one number per vocabulary learned in
``tf_idf`` mode: the OOV id's IDF weight, which Keras sets to TensorFlow's float32
``reduce_mean`` of the other weights.  TensorFlow sums those in float32 in an order set
by Eigen's packet width and thread count (machine-dependent); we round the exact mean
once.  The two differ by at most 2 ulp (measured on 400 vocabularies of 1 to 1,000,000
weights), so that weight is held to 2.5 ulp relative (``2.5 * 2**-23``).  The output
column it scales (count times weight, each product rounded once on each side) is held to
3.5 ulp: 2 from the weight, half an ulp from each side's rounding, and half for margin.
Every other weight is ``log`` of a float64 ratio cast to float32: equal bit for bit, and
so is every other output value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.text import TextVectorization

ULP = 2.0**-23  # float32's relative spacing at the bottom of a binade
OOV_RTOL = 2.5 * ULP  # the OOV id's learned IDF weight: TensorFlow's float32 mean, 2 ulp
OOV_COLUMN_RTOL = 3.5 * ULP  # count * that weight, rounded once on each side
# Each mode on all 25,000 training reviews: adapt on them, then vectorize them in batches.
IMDB_CASES: dict[str, dict[str, Any]] = {
    "int": {"max_tokens": 10000, "output_sequence_length": 100},
    "int-bigrams": {"max_tokens": 20000, "output_sequence_length": 200, "ngrams": 2},
    "multi_hot": {"max_tokens": 10000, "output_mode": "multi_hot"},
    "count": {"max_tokens": 10000, "output_mode": "count"},
    "tf_idf": {"max_tokens": 10000, "output_mode": "tf_idf"},
    "tf_idf-bigrams": {"max_tokens": 10000, "output_mode": "tf_idf", "ngrams": [1, 2]},
}
IMDB_BATCH = 1024


def output_digest(batches: Iterable[np.ndarray], tf_idf: bool) -> tuple[str, np.ndarray]:
    """SHA-256 of the outputs' little-endian bytes (without column 0 in ``tf_idf``), and
    column 0 (the OOV id's, held to :data:`OOV_COLUMN_RTOL`) when ``tf_idf``."""
    digest = hashlib.sha256()
    oov = []
    for out in batches:
        if tf_idf:
            oov.append(out[:, 0].copy())
            out = out[:, 1:]
        digest.update(np.ascontiguousarray(out, dtype=out.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest(), (np.concatenate(oov) if oov else np.zeros(0, np.float32))


def vocabulary_digest(tokens: list[bytes]) -> str:
    """SHA-256 of the tokens joined by newlines."""
    return hashlib.sha256(b"\n".join(tokens)).hexdigest()


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def nested_bytes(value: Any) -> Any:
    """A case's texts (a text, a list, or rows) as bytes."""
    if isinstance(value, str):
        return to_bytes(value)
    return [nested_bytes(v) for v in value]


def engine_config(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    if isinstance(out.get("ngrams"), list):
        out["ngrams"] = tuple(out["ngrams"])
    return out


def run_ours(case: dict[str, Any], workdir: Path, **override: Any) -> dict[str, Any]:
    """Our engine on one case: vocabulary (bytes), output, IDF, or the error raised.
    ``override`` replaces configuration entries (the negative twins use it)."""
    try:
        vocabulary = case.get("vocabulary")
        if isinstance(vocabulary, dict):
            path = workdir / "vocabulary.txt"
            path.write_bytes(to_bytes(vocabulary["file"]))
            vocabulary = path
        elif vocabulary is not None:
            vocabulary = [to_bytes(t) for t in vocabulary]
        vec = TextVectorization(**{**engine_config(case["config"]), **override},
                                vocabulary=vocabulary, idf_weights=case.get("idf_weights"))
        if case.get("adapt") is not None:
            vec.adapt(nested_bytes(case["adapt"]))
        elif case.get("adapt_batches") is not None:
            vec.adapt(iter([nested_bytes(b) for b in case["adapt_batches"]]))
        output = vec(nested_bytes(case["inputs"]))
    except (ValueError, RuntimeError, TypeError) as err:
        return {"error": f"{type(err).__name__}: {err}"}
    tokens = [t.encode(vec.encoding, "surrogateescape") for t in vec.get_vocabulary()]
    result: dict[str, Any] = {"vocabulary": tokens}
    if isinstance(output, list):
        result["ragged"] = [row.tolist() for row in output]
    else:
        result["output"] = output
    if vec.idf_weights is not None:
        result["idf"] = vec.idf_weights
    return result


def differences(case: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
                ) -> list[str]:
    """What differs between our result and TensorFlow's (empty: parity)."""
    if "error" in theirs or "error" in ours:
        if "error" in theirs and "error" in ours:
            return []
        return [f"error: TF {theirs.get('error')!r}, ours {ours.get('error')!r}"]
    found = []
    if ours["vocabulary"] != theirs["vocabulary"]:
        first = next((i for i, (a, b) in enumerate(zip(ours["vocabulary"], theirs["vocabulary"],
                                                       strict=False)) if a != b),
                     min(len(ours["vocabulary"]), len(theirs["vocabulary"])))
        found.append(f"vocabulary differs from index {first}")
    if "ragged" in theirs or "ragged" in ours:
        if ours.get("ragged") != theirs.get("ragged"):
            found.append("ragged output differs")
        return found
    a, b = np.asarray(ours["output"]), np.asarray(theirs["output"])
    learned_idf = case["config"].get("output_mode") == "tf_idf" and \
        case.get("vocabulary") is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return [*found, f"output {a.dtype}{a.shape}, TF {b.dtype}{b.shape}"]
    exact_a, exact_b = (a[..., 1:], b[..., 1:]) if learned_idf else (a, b)
    if not np.array_equal(exact_a, exact_b, equal_nan=True):
        found.append(f"output differs at {int((exact_a != exact_b).sum())} positions")
    if learned_idf and not np.allclose(a[..., 0], b[..., 0], rtol=OOV_COLUMN_RTOL, atol=0,
                                       equal_nan=True):
        found.append("OOV column beyond 3.5 ulp")
    if "idf" in theirs:
        ia, ib = ours.get("idf"), theirs["idf"]
        if ia is None or ia.shape != ib.shape:
            found.append("idf weights missing or of another length")
        elif not np.array_equal(ia[1:] if learned_idf else ia, ib[1:] if learned_idf else ib,
                                equal_nan=True) or \
                not np.allclose(ia[:1], ib[:1], rtol=OOV_RTOL, atol=0, equal_nan=True):
            found.append("idf weights differ")
    return found
