"""Every output mode of the text engine against Keras's layer on TensorFlow.

The cases (``reference/text_cases.py``: strings built to break ports under each mode,
standardization, split, n-gram setting, length, given vocabulary, and the fuzzer's
regressions) were run in TensorFlow by ``reference/make_text_reference.py``; here the
engine replays them.  Vocabularies (order and ties), ids and counts must be equal; IDF
weights and TF-IDF values too, except the OOV id's learned weight and its column (see
:mod:`parity_tests.text_compare`: 2.5 and 3.5 ulp).  Each negative twin changes one rule and must
break parity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embeddings.text import tokens as text_tokens
from embeddings.text import vocabulary as text_vocabulary
from parity_tests.conftest import load_fixture
from parity_tests.reference.text_cases import cases
from parity_tests.text_compare import OOV_RTOL, differences, run_ours, to_bytes


def _digest(case: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(case, sort_keys=True, ensure_ascii=True).encode()
                          ).hexdigest()


@pytest.fixture(scope="module")
def recorded() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each case with TensorFlow's result, by name (the case must be the recorded one)."""
    fixture = load_fixture("text_modes.json")
    arrays = load_fixture("text_modes.npz")
    by_name = {c["name"]: c for c in cases()}
    out = {}
    for i, record in enumerate(fixture["cases"]):
        case = by_name.get(record["name"])
        assert case is not None and _digest(case) == record["case_sha256"], (
            f"case {record['name']} changed since it was recorded: run "
            "parity_tests/reference/make_text_reference.py with the tf extra")
        theirs: dict[str, Any] = {}
        if "error" in record:
            theirs["error"] = record["error"]
        else:
            theirs["vocabulary"] = [to_bytes(t) for t in record["tf_vocabulary"]]
            if "tf_ragged" in record:
                theirs["ragged"] = record["tf_ragged"]
            else:
                theirs["output"] = arrays[f"{i}.output"]
            if f"{i}.idf" in arrays:
                theirs["idf"] = arrays[f"{i}.idf"]
        out[record["name"]] = (case, theirs)
    assert set(out) == set(by_name), "cases without a record: regenerate the fixtures"
    return out


def _mismatches(recorded: dict[str, tuple[dict[str, Any], dict[str, Any]]], tmp_path: Path,
                select: str = "", **override: Any) -> dict[str, list[str]]:
    found = {}
    for name, (case, theirs) in recorded.items():
        if select and select not in name:
            continue
        diff = differences(case, run_ours(case, tmp_path, **override), theirs)
        if diff:
            found[name] = diff
    return found


@pytest.mark.parametrize("mode", ["int", "multi_hot", "count", "tf_idf", "one_hot"])
def test_every_case_of_a_mode_is_tensorflows(mode: str, recorded, tmp_path: Path,  # type: ignore[no-untyped-def]
                                             report) -> None:
    chosen = {n: r for n, r in recorded.items() if r[0]["config"].get("output_mode", "int")
              == mode}
    assert len(chosen) >= (5 if mode == "one_hot" else 25)
    found = _mismatches(chosen, tmp_path)
    report.check(f"text engine, {mode} mode: cases differing of {len(chosen)}", "engine",
                 len(found), 0, "vocabulary, ids, counts equal; OOV IDF 2.5 ulp")
    assert found == {}


def test_the_oov_weight_tolerance_is_needed_and_is_enough(recorded) -> None:  # type: ignore[no-untyped-def]
    """The one tolerance is needed and enough: TF's learned OOV weight is within 2 ulp of
    the exactly rounded mean, and on some cases it is not that mean."""
    ulps = []
    for name, (case, theirs) in recorded.items():
        if "idf" in theirs and case.get("vocabulary") is None:
            learned = theirs["idf"][1:len(theirs["vocabulary"])]  # not the padding zeros
            exact = text_vocabulary.oov_weight(learned)
            assert np.allclose(theirs["idf"][0], exact, rtol=OOV_RTOL, atol=0), name
            ulps.append(abs(int(theirs["idf"][:1].view(np.int32)[0]) -
                            int(np.array([exact]).view(np.int32)[0])))
    assert len(ulps) >= 20 and 0 < max(ulps) <= 2


def test_unicode_lowercasing_breaks_parity(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Negative twin: Python's str.lower (Unicode rules) instead of TensorFlow's ASCII."""
    table = str.maketrans("", "", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

    def unicode_lower(texts: np.ndarray) -> np.ndarray:
        return np.array([t.lower().translate(table) for t in texts.ravel()],
                        dtype=str).reshape(texts.shape)

    chosen = {n: r for n, r in recorded.items()
              if r[0]["config"].get("standardize", "lower_and_strip_punctuation")
              == "lower_and_strip_punctuation" and r[0].get("adapt")}
    found = _mismatches(chosen, tmp_path, standardize=unicode_lower)
    assert len(found) >= 10


def test_ascending_tie_order_breaks_parity(recorded, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative twin: ties broken by ascending token bytes."""
    monkeypatch.setattr(text_vocabulary, "TIE_ORDER", "ascending")
    found = _mismatches(recorded, tmp_path)
    assert len(found) >= 20
    assert all("vocabulary" in d[0] for d in found.values())


def test_another_ngram_separator_breaks_parity(recorded, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative twin: n-grams joined with '_' instead of one space."""
    monkeypatch.setattr(text_tokens, "NGRAM_SEPARATOR", b"_")
    found = _mismatches(recorded, tmp_path, select="ngrams")
    assert len(found) >= 10


def test_sklearn_idf_breaks_parity(recorded, tmp_path: Path,  # type: ignore[no-untyped-def]
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative twin: scikit-learn's smooth IDF, ln((1 + n) / (1 + df)) + 1."""
    monkeypatch.setattr(text_vocabulary, "inverse_document_frequency",
                        lambda df, n: (np.log((1 + n) / (1 + df.astype(np.float64))) + 1
                                       ).astype(np.float32))
    found = _mismatches({n: r for n, r in recorded.items() if n.startswith("tf_idf")
                         and r[0].get("vocabulary") is None}, tmp_path)
    assert len(found) >= 10


def test_padding_before_ngrams_breaks_parity(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Negative twin: n-grams made after padding to the sequence length reach into the
    padding ('x' + '' joined), which TensorFlow never does."""
    def padded_split(texts: np.ndarray) -> list[list[str]]:
        return [(t.split() + [""] * 5)[:max(5, len(t.split()))] for t in texts]

    chosen = {n: r for n, r in recorded.items() if n.startswith("int-length5-ngrams")
              and "None" not in n}
    found = _mismatches(chosen, tmp_path, split=padded_split)
    assert len(found) == len(chosen) == 2


def test_recorded_vocabularies_are_not_trivial(recorded) -> None:  # type: ignore[no-untyped-def]
    """The cases exercise what they claim: bigrams, invalid UTF-8 and ties are in TF's
    vocabularies."""
    vocabulary = recorded["int-ngrams2"][1]["vocabulary"]
    assert any(b" " in t for t in vocabulary)
    assert b"caf\xe9" in recorded["int-lower_and_strip_punctuation-whitespace"][1]["vocabulary"]
    ties = recorded["int-max9"][1]["vocabulary"]
    assert len(ties) == 9
