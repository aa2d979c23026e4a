"""Tests of ``benchmarks/compare.py`` on small synthetic reports written to ``tmp_path``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import compare

TUTORIAL = {"shape": "tutorial", "B": 1024, "T": 100, "V": 10000, "D": 16}


def _case(impl: str, phase: str, median_s: float | None, iqr_s: float | None, *,
          device: str = "cpu", skipped: str | None = None, **shape: Any) -> dict[str, Any]:
    case = {"kind": "hotloop", **TUTORIAL, **shape, "impl": impl, "phase": phase,
            "device": device, "dtype": "float32", "median_s": median_s, "iqr_s": iqr_s}
    if skipped:
        case["skipped"] = skipped
    return case


def _hotloop(*cases: dict[str, Any]) -> dict[str, Any]:
    return {"benchmark": "hotloop", "environment": {"hostname": "h"}, "cases": list(cases)}


def _write(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def _run(tmp_path: Path, a: dict[str, Any], b: dict[str, Any]) -> int:
    return compare.main([_write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b)])


def test_matching_cases_get_ratio_b_over_a(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    a = _hotloop(_case("ours", "forward", 0.002, 0.0001))
    b = _hotloop(_case("ours", "forward", 0.003, 0.0001))
    result = compare.compare(a, b)
    assert [m.key for m in result.matched] == [
        ("tutorial", "B=1024 T=100 V=10000 D=16", "ours", "forward", "cpu", "float32")]
    assert result.matched[0].ratio == pytest.approx(1.5, rel=1e-12, abs=0.0)
    assert _run(tmp_path, a, b) == 0
    out = capsys.readouterr().out
    assert "2.0000" in out and "3.0000" in out and "1.500" in out


def test_change_within_noise_is_not_marked() -> None:
    # A: IQR 5% of the median; B: 1%. A 3% change lies inside the larger (5%).
    a = _hotloop(_case("ours", "forward", 1.0, 0.05))
    b = _hotloop(_case("ours", "forward", 1.03, 0.0103))
    (match,) = compare.compare(a, b).matched
    assert match.noise == pytest.approx(0.05, rel=1e-12, abs=0.0)
    assert match.mark == ""


def test_change_beyond_noise_of_both_runs_is_marked() -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.05))
    b = _hotloop(_case("ours", "forward", 0.9, 0.009))  # 10% faster, noise 5% and 1%
    (match,) = compare.compare(a, b).matched
    assert match.mark == "*"


def test_change_beyond_one_run_noise_only_is_not_marked() -> None:
    # 4% change: above B's 1% spread but within A's 5%, so it is not beyond both.
    a = _hotloop(_case("ours", "forward", 1.0, 0.05))
    b = _hotloop(_case("ours", "forward", 1.04, 0.0104))
    (match,) = compare.compare(a, b).matched
    assert match.mark == ""


def test_unknown_noise_is_marked_with_question_mark() -> None:
    a = _hotloop(_case("tf", "backward", 1.0, None))
    b = _hotloop(_case("tf", "backward", 2.0, None))
    (match,) = compare.compare(a, b).matched
    assert match.noise is None and match.mark == "?"


def test_different_kinds_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.1))
    b = {"benchmark": "epoch", "backends": {}}
    assert _run(tmp_path, a, b) == 2
    err = capsys.readouterr().err
    assert "different kinds" in err and "'hotloop'" in err and "'epoch'" in err
    with pytest.raises(compare.CompareError, match="different kinds"):
        compare.compare(a, b)


@pytest.mark.parametrize("bad", [{"cases": []}, {"benchmark": "mystery"}, [1, 2]])
def test_unknown_reports_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     bad: Any) -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.1))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert compare.main([_write(tmp_path, "a.json", a), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report B (") and str(path) in err


def test_cases_in_one_report_only_are_listed(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.1), _case("embeddingbag", "forward", 2.0, 0.1))
    b = _hotloop(_case("ours", "forward", 1.0, 0.1), _case("keras_jit", "forward", 3.0, 0.1))
    result = compare.compare(a, b)
    assert [k[2] for k in result.only_a] == ["embeddingbag"]
    assert [k[2] for k in result.only_b] == ["keras_jit"]
    assert _run(tmp_path, a, b) == 0
    out = capsys.readouterr().out
    assert "only in A (1):" in out and "only in B (1):" in out


def test_different_device_or_dimensions_never_match() -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.1),
                 _case("ours", "backward", 1.0, 0.1))
    b = _hotloop(_case("ours", "forward", 1.0, 0.1, device="cuda"),
                 _case("ours", "backward", 1.0, 0.1, D=32))  # same shape name, other D
    result = compare.compare(a, b)
    assert result.matched == []
    assert {k[4] for k in result.only_b} == {"cuda", "cpu"}
    assert any("D=32" in k[1] for k in result.only_b)
    assert len(result.only_a) == 2


def test_no_common_case_exits_one(tmp_path: Path) -> None:
    a = _hotloop(_case("ours", "forward", 1.0, 0.1))
    b = _hotloop(_case("ours", "forward", 1.0, 0.1, device="cuda"))
    assert _run(tmp_path, a, b) == 1


def test_skipped_cases_are_listed_not_matched() -> None:
    a = _hotloop(_case("tf", "forward", None, None, skipped="skipped: TensorFlow not installed"))
    b = _hotloop(_case("tf", "forward", 0.5, 0.01))
    result = compare.compare(a, b)
    assert result.matched == []
    assert result.skipped[0][1] == "A: skipped: TensorFlow not installed"


def test_epoch_reports_match_on_backend() -> None:
    def report(torch_s: float) -> dict[str, Any]:
        return {"benchmark": "epoch", "config": {"device": "cpu"}, "backends": {
            "torch": {"epoch": {"median_s": torch_s, "iqr_s": 0.01,
                                "times_s": [torch_s] * 3}},
            "tf": {"skipped": "skipped: TensorFlow not installed"}}}

    result = compare.compare(report(1.0), report(0.5))
    (match,) = result.matched
    assert match.key == ("torch", "cpu")
    assert match.ratio == pytest.approx(0.5, rel=1e-12, abs=0.0)
    assert match.mark == "*"
    assert [key for key, _ in result.skipped] == [("tf", "cpu")]


def test_vectorizer_reports_use_iqr_of_their_times() -> None:
    times = [1.0, 1.1, 1.2, 1.3, 1.4]  # inclusive quartiles 1.1 and 1.3
    a = {"benchmark": "vectorizer", "ours": {"total": {"median_s": 1.2, "times_s": times}},
         "tf": {"skipped": "TensorFlow skipped"}}
    b = {"benchmark": "vectorizer", "ours": {"total": {"median_s": 1.3, "times_s": times}},
         "tf": {"skipped": "TensorFlow skipped"}}
    result = compare.compare(a, b)
    (match,) = result.matched
    assert match.key == ("int", "ours", "total")  # a report without rows is the int row
    assert match.a.iqr_s == pytest.approx(0.2, rel=1e-9, abs=0.0)
    assert match.mark == ""  # 8.3% change, 16.7% relative IQR
    assert ("int", "ours", "adapt") in [key for key, _ in result.skipped]


def _vectorizer(**rows: tuple[float, float | None]) -> dict[str, Any]:
    """A report with ``modes``: per row the total median of ours and of TF (None: skipped)."""
    def side(median_s: float | None) -> dict[str, Any]:
        if median_s is None:
            return {"skipped": "TensorFlow skipped"}
        return {"total": {"median_s": median_s, "iqr_s": median_s / 100,
                          "times_s": [median_s] * 3}}

    return {"benchmark": "vectorizer", "tf": {"tensorflow": "2.21.0"},
            "modes": {mode: {"ours": side(ours), "tf": side(tf)}
                      for mode, (ours, tf) in rows.items()}}


def test_vectorizer_rows_match_on_mode_impl_and_phase() -> None:
    a = _vectorizer(int=(0.4, 3.3), tf_idf=(2.0, 10.0))
    b = _vectorizer(int=(0.2, 3.3), multi_hot=(1.0, None))
    result = compare.compare(a, b)
    by_key = {m.key: m for m in result.matched}
    assert set(by_key) == {("int", "ours", "total"), ("int", "tf", "total")}
    assert by_key[("int", "ours", "total")].ratio == pytest.approx(0.5, rel=1e-12, abs=0.0)
    assert by_key[("int", "tf", "total")].mark == ""
    assert ("tf_idf", "tf", "total") in result.only_a
    assert ("multi_hot", "ours", "total") in result.only_b
    assert ("multi_hot", "tf", "total") in result.only_b


def test_old_vectorizer_report_compares_with_the_int_row(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    old = {"benchmark": "vectorizer",
           "ours": {"total": {"median_s": 0.36, "times_s": [0.35, 0.36, 0.37]}},
           "tf": {"total": {"median_s": 3.3, "times_s": [3.2, 3.3, 3.4]}}}
    new = _vectorizer(int=(0.18, 3.3), count=(1.0, 6.0))
    result = compare.compare(old, new)
    assert {m.key for m in result.matched} == {("int", "ours", "total"),
                                               ("int", "tf", "total")}
    (ours,) = [m for m in result.matched if m.key[1] == "ours"]
    assert ours.ratio == pytest.approx(0.5, rel=1e-12, abs=0.0)
    assert ours.mark == "*"  # 50% faster; relative IQRs 2.8% (A) and 1% (B)
    assert _run(tmp_path, old, new) == 0
    out = capsys.readouterr().out
    assert "int ours total" in out and "only in B (" in out and "count ours total" in out


def _accuracy(**cases: tuple[float, list[float]] | None) -> dict[str, Any]:
    """A report with, per case, the median training seconds (IQR 1% of it) and the test
    accuracy of each repetition; ``None``: a skipped case."""
    def case(name: str, figures: tuple[float, list[float]] | None) -> dict[str, Any]:
        kind = "fasttext" if name.startswith("fasttext") else "preset"
        if figures is None:
            return {"kind": kind, "skipped": "skipped: --skip-fasttext"}
        median_s, accuracies = figures
        return {"kind": kind, "wall": {"median_s": median_s, "iqr_s": median_s / 100,
                                       "times_s": [median_s] * len(accuracies)},
                "peak_rss_mib": 500.0, "test_accuracy": accuracies}

    return {"benchmark": "accuracy", "environment": {"hostname": "h"},
            "cases": {name: case(name, figures) for name, figures in cases.items()}}


def test_accuracy_reports_match_on_case_name(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a = _accuracy(tutorial=(30.0, [0.85, 0.85, 0.85]), bigrams=(120.0, [0.89, 0.89, 0.89]),
                  **{"fasttext-bigrams": (48.0, [0.8913, 0.8920, 0.8905])})
    b = _accuracy(tutorial=(15.0, [0.86, 0.86, 0.86]), fasttext=(5.0, [0.8728]),
                  **{"fasttext-bigrams": None})
    result = compare.compare(a, b)
    (match,) = result.matched
    assert match.key == ("tutorial",)
    assert match.ratio == pytest.approx(0.5, rel=1e-12, abs=0.0)
    assert match.mark == "*"  # twice as fast; 1% spread in both
    assert (match.a.accuracy, match.b.accuracy) == (0.85, 0.86)
    assert result.only_a == [("bigrams",)] and result.only_b == [("fasttext",)]
    assert result.skipped == [(("fasttext-bigrams",), "B: skipped: --skip-fasttext")]
    assert _run(tmp_path, a, b) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("tutorial ")]
    # seconds, not milliseconds; both accuracies and B - A
    assert line.split() == ["tutorial", "30.0000", "15.0000", "0.500", "1.0%", "*", "0.8500",
                            "0.8600", "+0.0100"]
    assert "A s" in out and "B-A acc" in out


def test_accuracy_of_a_case_is_the_median_of_its_repeats() -> None:
    a = _accuracy(fasttext=(5.0, [0.87, 0.80, 0.88]))
    b = _accuracy(fasttext=(5.0, [0.86]))
    (match,) = compare.compare(a, b).matched
    assert match.a.accuracy == 0.87 and match.b.accuracy == 0.86
    assert match.mark == ""  # same median time
    (line,) = compare.format_comparison(compare.compare(a, b))[1:2]
    assert line.split()[-3:] == ["0.8700", "0.8600", "-0.0100"]



def _step(**presets: tuple[dict[str, Any], dict[str, float]]) -> dict[str, Any]:
    """A step report: per preset its ``B, T, V, D`` and the median of each phase (IQR 1%);
    phases named ``adam.<part>`` go to ``adam_parts``."""
    def timing(median_s: float) -> dict[str, Any]:
        return {"median_s": median_s, "iqr_s": median_s / 100, "times_s": [median_s] * 3,
                "share": 0.5}

    def result(shape: dict[str, Any], medians: dict[str, float]) -> dict[str, Any]:
        return {"shape": {**shape, "ngrams": 1},
                "phases": {p: timing(t) for p, t in medians.items() if "." not in p},
                "adam_parts": {p.split(".", 1)[1]: timing(t) for p, t in medians.items()
                               if p.startswith("adam.")}}

    return {"benchmark": "step", "environment": {"hostname": "h"},
            "presets": {name: result(*figures) for name, figures in presets.items()}}


BIGRAMS = {"B": 128, "T": 1000, "V": 300_000, "D": 16}


def test_step_reports_match_on_preset_shape_and_phase(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    a = _step(bigrams=(BIGRAMS, {"forward": 0.010, "adam": 0.020, "step": 0.040,
                                 "adam.table": 0.018}),
              tutorial=(TUTORIAL, {"forward": 0.002}))
    b = _step(bigrams=(BIGRAMS, {"forward": 0.010, "adam": 0.010, "step": 0.030,
                                 "adam.table": 0.009, "adam.dense": 0.0001}))
    result = compare.compare(a, b)
    by_key = {m.key: m for m in result.matched}
    dims = "B=128 T=1000 V=300000 D=16"
    assert set(by_key) == {("bigrams", dims, p) for p in ("forward", "adam", "step",
                                                          "adam.table")}
    assert by_key[("bigrams", dims, "adam")].ratio == pytest.approx(0.5, rel=1e-12, abs=0.0)
    assert by_key[("bigrams", dims, "adam")].mark == "*"  # halved; 1% spread in both
    assert by_key[("bigrams", dims, "forward")].mark == ""
    assert result.only_a == [("tutorial", "B=1024 T=100 V=10000 D=16", "forward")]
    assert result.only_b == [("bigrams", dims, "adam.dense")]
    assert _run(tmp_path, a, b) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith(f"bigrams {dims} adam ")]
    assert line.split()[6:] == ["20.0000", "10.0000", "0.500", "1.0%", "*"]  # milliseconds


def test_step_reports_of_other_sizes_never_match() -> None:
    # The same preset measured with --set vocab_size=50 is another case, not a speed-up.
    a = _step(bigrams=(BIGRAMS, {"step": 0.040}))
    b = _step(bigrams=({**BIGRAMS, "V": 50}, {"step": 0.001}))
    result = compare.compare(a, b)
    assert result.matched == []
    assert result.only_a == [("bigrams", "B=128 T=1000 V=300000 D=16", "step")]
    assert result.only_b == [("bigrams", "B=128 T=1000 V=50 D=16", "step")]


def test_skipped_step_preset_is_listed_apart() -> None:
    a = {"benchmark": "step", "presets": {"bigrams": {"shape": BIGRAMS,
                                                      "skipped": "skipped: out of memory"}}}
    b = _step(bigrams=(BIGRAMS, {"step": 0.040}))
    result = compare.compare(a, b)
    assert result.matched == [] and result.skipped == [
        (("bigrams", "B=128 T=1000 V=300000 D=16", "step"), "A: skipped: out of memory")]


REPO = Path(__file__).resolve().parents[1]
GOOD_CASE = _case("ours", "forward", 1.0, 0.1)

# (file name, contents or None for no file, what the one-line message must say)
MALFORMED = {
    "missing file": ("absent.json", None, "does not exist; pass a JSON report written by"),
    "not JSON": ("broken.json", "{not json", "is not JSON (Expecting property name"),
    "not UTF-8": ("latin1.json", b'{"benchmark": "hotloop\xe9"}', "is not JSON ("),
    "a folder": ("folder.json", "", "cannot be read (Is a directory)"),
    "top level list": ("list.json", [1, 2], "must be a JSON object with a benchmark field. "
                       "Received: a JSON list"),
    "unknown kind": ("kind.json", {"benchmark": "mystery"}, "Received: benchmark='mystery'"),
    "no cases": ("nocases.json", {"benchmark": "hotloop"}, "field cases is missing; it must be "
                 "a list; fix the field, or write the report again with python -m "
                 "benchmarks.hotloop"),
    "cases not a list": ("cases.json", {"benchmark": "hotloop", "cases": {"a": 1}},
                         "field cases must be a list. Received: cases={'a': 1}"),
    "case not an object": ("case.json", _hotloop(GOOD_CASE, "fast"),
                           "field cases[1] must be an object. Received: cases[1]='fast'"),
    "case without impl": ("impl.json", _hotloop({k: v for k, v in GOOD_CASE.items()
                                                 if k != "impl"}),
                          "field cases[0].impl is missing; it must be a string"),
    "string dimension": ("dim.json", _hotloop(_case("ours", "forward", 1.0, 0.1, D="16")),
                         "field cases[0].D must be an integer. Received: cases[0].D='16'"),
    "string median": ("median.json", _hotloop({**GOOD_CASE, "median_s": "1 ms"}),
                      "field cases[0].median_s must be a number or null. Received: "
                      "cases[0].median_s='1 ms'"),
    "string timing": ("times.json", _hotloop({**GOOD_CASE, "times_s": [1.0, "x"]}),
                      "field cases[0].times_s[1] must be a number. Received: "
                      "cases[0].times_s[1]='x'"),
    "epoch backends list": ("epoch.json", {"benchmark": "epoch", "backends": ["torch"]},
                            "field backends must be an object. Received: backends=['torch']; "
                            "fix the field, or write the report again with python -m "
                            "benchmarks.epoch"),
    "epoch timing not an object": ("epoch2.json", {"benchmark": "epoch", "backends": {
        "torch": {"epoch": 0.5}}}, "field backends.torch.epoch must be an object or null. "
        "Received: backends.torch.epoch=0.5"),
    "vectorizer phase mistyped": ("vec.json", {"benchmark": "vectorizer", "ours": {
        "total": {"median_s": [1]}}}, "field ours.total.median_s must be a number or null"),
    "vectorizer modes a list": ("modes.json", {"benchmark": "vectorizer", "modes": ["int"]},
                                "field modes must be an object or null. Received: "
                                "modes=['int']; fix the field, or write the report again "
                                "with python -m benchmarks.vectorizer"),
    "vectorizer row not an object": ("row.json", {"benchmark": "vectorizer", "modes": {
        "count": 1.5}}, "field modes.count must be an object. Received: modes.count=1.5"),
    "vectorizer row timing mistyped": ("rowt.json", {"benchmark": "vectorizer", "modes": {
        "tf_idf": {"tf": {"adapt": {"median_s": 1.0, "times_s": [1.0, "x"]}}}}},
        "field modes.tf_idf.tf.adapt.times_s[1] must be a number. Received: "
        "modes.tf_idf.tf.adapt.times_s[1]='x'"),
    "accuracy cases a list": ("acc.json", {"benchmark": "accuracy", "cases": ["tutorial"]},
                              "field cases must be an object. Received: cases=['tutorial']; "
                              "fix the field, or write the report again with python -m "
                              "benchmarks.accuracy"),
    "accuracy without cases": ("acc0.json", {"benchmark": "accuracy"},
                               "field cases is missing; it must be an object"),
    "accuracy case not an object": ("acc1.json", {"benchmark": "accuracy", "cases": {
        "tutorial": 0.85}}, "field cases.tutorial must be an object. Received: "
        "cases.tutorial=0.85"),
    "accuracy wall mistyped": ("acc2.json", {"benchmark": "accuracy", "cases": {
        "bigrams": {"wall": {"median_s": "2 min"}}}}, "field cases.bigrams.wall.median_s "
        "must be a number or null. Received: cases.bigrams.wall.median_s='2 min'"),
    "accuracy wall not an object": ("acc3.json", {"benchmark": "accuracy", "cases": {
        "bigrams": {"wall": [1.0]}}}, "field cases.bigrams.wall must be an object or null"),
    "accuracy not numbers": ("acc4.json", {"benchmark": "accuracy", "cases": {
        "fasttext": {"wall": {"median_s": 5.0}, "test_accuracy": [0.87, "87%"]}}},
        "field cases.fasttext.test_accuracy[1] must be a number. Received: "
        "cases.fasttext.test_accuracy[1]='87%'"),
    "accuracy not a list": ("acc5.json", {"benchmark": "accuracy", "cases": {
        "fasttext": {"test_accuracy": 0.87}}}, "field cases.fasttext.test_accuracy must be a "
        "list or null. Received: cases.fasttext.test_accuracy=0.87"),
    "accuracy kind mistyped": ("acc6.json", {"benchmark": "accuracy", "cases": {
        "tutorial": {"kind": 1}}}, "field cases.tutorial.kind must be a string or null"),
    "step presets a list": ("step.json", {"benchmark": "step", "presets": ["bigrams"]},
                            "field presets must be an object. Received: presets=['bigrams']; "
                            "fix the field, or write the report again with python -m "
                            "benchmarks.step"),
    "step without shape": ("step1.json", {"benchmark": "step", "presets": {"tutorial": {
        "phases": {}}}}, "field presets.tutorial.shape is missing; it must be an object"),
    "step string dimension": ("step2.json", {"benchmark": "step", "presets": {"bigrams": {
        "shape": {**BIGRAMS, "V": "300k"}}}}, "field presets.bigrams.shape.V must be an "
        "integer. Received: presets.bigrams.shape.V='300k'"),
    "step phase mistyped": ("step3.json", {"benchmark": "step", "presets": {"bigrams": {
        "shape": BIGRAMS, "phases": {"adam": {"median_s": "20 ms"}}}}},
        "field presets.bigrams.phases.adam.median_s must be a number or null. Received: "
        "presets.bigrams.phases.adam.median_s='20 ms'"),
    "step part not an object": ("step4.json", {"benchmark": "step", "presets": {"bigrams": {
        "shape": BIGRAMS, "adam_parts": {"table": 0.02}}}},
        "field presets.bigrams.adam_parts.table must be an object. Received: "
        "presets.bigrams.adam_parts.table=0.02"),
    "commit not a string": ("env.json", {**_hotloop(GOOD_CASE), "environment": {
        "git_commit": 123}}, "field environment.git_commit must be a string or null"),
}


def _cli(tmp_path: Path, name: str, contents: Any) -> tuple[subprocess.CompletedProcess[str],
                                                              Path]:
    """Run ``python -m benchmarks.compare good.json <name>`` after writing ``contents``."""
    bad = tmp_path / name
    if isinstance(contents, bytes):
        bad.write_bytes(contents)
    elif contents == "":
        bad.mkdir()
    elif isinstance(contents, str):
        bad.write_text(contents)
    elif contents is not None:
        bad.write_text(json.dumps(contents))
    good = _write(tmp_path, "good.json", _hotloop(GOOD_CASE))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compare", good, str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc, bad


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_report_is_one_line_error_naming_file_and_field(tmp_path: Path,
                                                                  case: str) -> None:
    name, contents, expected = MALFORMED[case]
    proc, bad = _cli(tmp_path, name, contents)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: report B ({bad})"), proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) <= 3
    assert proc.stdout == ""


def test_well_formed_reports_still_compare_from_the_command_line(tmp_path: Path) -> None:
    # The negative twin of the malformed cases: the same command on a valid B succeeds.
    proc, _ = _cli(tmp_path, "b.json", _hotloop(_case("ours", "forward", 2.0, 0.1)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "2.000" in proc.stdout  # B/A = 2


@pytest.mark.parametrize("name", ["epoch-cpu-2core.json", "hotloop-cpu-2core.json",
                                  "hotloop-cpu-2core-long.json", "vectorizer-cpu-2core.json",
                                  "vectorizer-cpu-2core-run2.json", "step-cpu-2core.json"])
def test_committed_reports_pass_the_field_checks(name: str) -> None:
    report = compare.load(REPO / "benchmarks" / "reports" / name, "A")
    assert compare.check(report) == report["benchmark"]


def test_malformed_report_error_is_a_usage_error() -> None:
    from embeddings.errors import InvalidInput, UsageError

    bad = _hotloop({**GOOD_CASE, "median_s": "slow"})
    with pytest.raises(InvalidInput, match=r"^B: field cases\[0\]\.median_s must be a number"):
        compare.compare(_hotloop(GOOD_CASE), bad)
    assert issubclass(compare.CompareError, UsageError)
