"""Tests of ``benchmarks/vectorizer.py``'s flags and of its output check
(``benchmarks/_vectorizer_check.py``), on hand-made batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import _vectorizer_check as checking
from benchmarks import vectorizer
from benchmarks._tf_vectorizer import MODES, OutputCheck, layer_arguments


def _batches(seed: int = 0) -> list[np.ndarray]:
    """Two ``tf_idf``-like batches ``(3, 5)`` and ``(2, 5)`` of float32 weights."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 3, size=(n, 5)) * rng.uniform(1, 4, size=5)).astype(np.float32)
            for n in (3, 2)]


def _record(batches: list[np.ndarray], ids: bool = False) -> OutputCheck:
    check = OutputCheck(ids)
    for batch in batches:
        check.add(batch)
    return check


def _nudge(batches: list[np.ndarray], batch: int, column: int, ulps: int) -> list[np.ndarray]:
    """A copy with every non-zero entry of one column moved ``ulps`` float32 ulps up."""
    out = [b.copy() for b in batches]
    col = out[batch][:, column]
    for _ in range(ulps):
        col = np.where(col != 0, np.nextafter(col, np.float32(np.inf)), col)
    out[batch][:, column] = col
    return out


def test_same_values_are_equal_whatever_the_integer_dtype() -> None:
    counts = [np.array([[1, 0, 2], [0, 3, 0]], np.int64)]  # TF's count dtype
    result = checking.check_outputs("count", _record(counts),
                                      _record([c.astype(np.float32) for c in counts]))
    assert result["outputs_equal"] is True
    assert result["output_dtypes"] == {"ours": "int64", "tf": "float32"}


def test_tf_idf_oov_column_within_two_ulps_is_equal() -> None:
    ours = _batches()
    assert (ours[1][:, 0] != 0).any()
    mine, theirs = _record(ours), _record(_nudge(ours, 1, 0, 2))
    mine.oov_weight, theirs.oov_weight = 2.0, float(np.nextafter(np.float32(2), np.float32(3)))
    result = checking.check_outputs("tf_idf", mine, theirs)
    assert result["outputs_equal"] is True
    assert result["column0_exact"] is False
    assert result["column0_max_ulps"] == 2
    assert result["oov_idf_weight"]["ulps"] == 1


def test_count_oov_column_must_be_exact() -> None:
    # The negative twin: the same 2-ulp difference outside tf_idf is a difference.
    ours = _batches()
    result = checking.check_outputs("count", _record(ours), _record(_nudge(ours, 1, 0, 2)))
    assert result["outputs_equal"] is False and result["column0_equal"] is False


def test_tf_idf_other_columns_must_be_exact() -> None:
    ours = _batches()
    assert (ours[1][:, 3] != 0).any()
    result = checking.check_outputs("tf_idf", _record(ours), _record(_nudge(ours, 1, 3, 1)))
    assert result["outputs_equal"] is False
    assert result["batches_differing"] == [1]
    assert result["column0_equal"] is True


def test_missing_batch_is_a_difference() -> None:
    ours = _batches()
    result = checking.check_outputs("multi_hot", _record(ours), _record(ours[:1]))
    assert result["outputs_equal"] is False
    assert result["batches"] == {"ours": 2, "tf": 1}


def test_int_ids_name_the_first_differing_row() -> None:
    ids = np.arange(40, dtype=np.int64).reshape(8, 5)
    other = ids.copy()
    other[5, 2] = 1
    result = checking.check_outputs("int", _record([ids[:4], ids[4:]], ids=True),
                                      _record([other[:4], other[4:]], ids=True))
    assert result["outputs_equal"] is False
    assert result["first_difference"]["first_row"] == 5
    assert result["first_difference"]["rows_differing"] == 1
    same = checking.check_outputs("int", _record([ids], ids=True), _record([ids], ids=True))
    assert same["outputs_equal"] is True


def test_ulps_count_float32_steps() -> None:
    one = np.array([1.0, 2.0], np.float32)
    up = np.nextafter(np.nextafter(one, np.float32(3)), np.float32(3))
    assert checking._ulps(one, up) == 2
    assert checking._ulps(one, one) == 0


@pytest.mark.parametrize("mode", ["int", "tf_idf"])
def test_output_check_round_trips_through_its_files(tmp_path: Path, mode: str) -> None:
    batches = [np.arange(15, dtype=np.int64).reshape(3, 5)] if mode == "int" else _batches()
    check = _record(batches, ids=mode == "int")
    check.save(tmp_path, mode)
    loaded = OutputCheck.load(tmp_path, mode, check.digests, str(check.dtype))
    result = checking.check_outputs(MODES[mode][0], check, loaded)
    assert result["outputs_equal"] is True
    assert result["output_dtypes"]["ours"] == result["output_dtypes"]["tf"]


def test_layer_arguments_give_sequences_to_int_rows_only() -> None:
    assert layer_arguments("int_bigrams", 10000, 100) == {
        "max_tokens": 10000, "output_mode": "int", "ngrams": (1, 2),
        "output_sequence_length": 100}
    assert layer_arguments("tf_idf", 10000, 100) == {
        "max_tokens": 10000, "output_mode": "tf_idf", "ngrams": None}


def test_modes_flag_selects_rows_in_order() -> None:
    assert vectorizer.parse_args([]).modes == list(MODES)
    assert vectorizer.parse_args(["--modes", "tf_idf,int,tf_idf"]).modes == ["tf_idf", "int"]


@pytest.mark.parametrize("value", ["int,bogus", ","])
def test_unknown_mode_is_refused_with_the_valid_ones(value: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        vectorizer.parse_args(["--modes", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"Received: --modes={value}" in err and "int, int_bigrams, multi_hot" in err


def test_row_names_the_first_vocabulary_difference() -> None:
    ids = [np.zeros((2, 3), np.int64)]
    same = checking.compare_row("int", [b"", b"[UNK]", b"the"], _record(ids, ids=True),
                                [b"", b"[UNK]", b"the"], _record(ids, ids=True))
    assert same["vocabulary_equal"] is True and same["outputs_equal"] is True
    other = checking.compare_row("int", [b"", b"[UNK]", b"the", b"a"], _record(ids, ids=True),
                                 [b"", b"[UNK]", b"a", b"the"], _record(ids, ids=True))
    assert other["vocabulary_equal"] is False
    assert other["vocabulary_first_difference"] == {"index": 2, "ours": "b'the'", "tf": "b'a'"}
