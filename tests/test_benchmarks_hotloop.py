"""The hot-loop benchmark's ``step`` phase (``benchmarks/_hotloop_step.py``): the command
line, the bytes model against hand-worked sums, and one tiny run's report and checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import compare, hotloop
from benchmarks._hotloop_impls import IMPLS
from benchmarks._hotloop_step import STEP_IMPLS, step_bytes, step_ratios


def test_the_step_phase_brings_its_own_implementations(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert hotloop.parse_args(["--phases", "step"]).impls == list(STEP_IMPLS)
    assert hotloop.parse_args([]).impls == list(IMPLS)  # the forward and backward phases
    both = hotloop.parse_args(["--phases", "forward,step"]).impls
    assert both == list(dict.fromkeys([*IMPLS, *STEP_IMPLS]))
    with pytest.raises(SystemExit) as err:
        hotloop.parse_args(["--phases", "step", "--impls", "embedding_mean"])
    assert err.value.code == 2
    assert ("--impls takes names from ours,ours_rows,embeddingbag,embeddingbag_sparse (with "
            "--phases step). Received: --impls=embedding_mean") in capsys.readouterr().err


@pytest.mark.parametrize(("impl", "sparse", "expected"), [
    # B=2, T=3, V=10, D=4, R=5: forward 6*8 + 6*16 + 2*16 = 176; a table 160 B, R rows 80 B
    ("ours", True, 176 + (3 * 48 + 2 * 80 + 2 * 80) + 6 * 160 + 2 * 80),  # listing, sweep
    ("ours", False, 176 + 48 + 2 * 160 + 8 * 160),  # two dense tables, then the dense sweep
    ("ours_rows", True, 176 + (3 * 48 + 2 * 80 + 2 * 80) + 8 * 80),
    ("embeddingbag", False, 176 + 48 + 160 + 7 * 160),
    ("embeddingbag_sparse", True, 176 + 48 + 96 + 2 * 96 + 7 * 80),
])
def test_step_bytes_follow_the_model(impl: str, sparse: bool, expected: int) -> None:
    assert step_bytes(impl, (2, 3, 10, 4), 5, sparse) == expected


def test_step_ratios_are_the_issues_two() -> None:
    cases = [{"shape": "large", "impl": impl, "phase": "step", "median_s": s}
             for impl, s in (("ours", 0.2), ("embeddingbag", 0.6), ("ours_rows", 0.1),
                             ("embeddingbag_sparse", 0.5))]
    ratios = {(r["impl"], r["baseline"]): r["speedup"] for r in step_ratios(cases)}
    assert ratios == {("ours", "embeddingbag"): pytest.approx(3.0),
                      ("ours_rows", "embeddingbag_sparse"): pytest.approx(5.0)}


def test_a_tiny_step_run_reports_bounds_and_exactness(tmp_path: Path) -> None:
    out = tmp_path / "step.json"
    assert hotloop.main(["--phases", "step", "--shapes", "tiny", "--min-run-time", "0.01",
                         "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cases = {c["impl"]: c for c in report["cases"]}
    assert set(cases) == set(STEP_IMPLS) and {c["phase"] for c in cases.values()} == {"step"}
    for case in cases.values():  # the bound: the case's bytes at the run's copy bandwidth
        assert case["bound_s"] == pytest.approx(case["bytes"] / report["copy"]["gbps"] / 1e9)
    checks = {c["impl"]: c for c in report["checks"]}
    assert checks["ours"]["weight_max_abs_diff_vs_exact"] == 0.0  # exact Keras rule
    assert checks["ours_rows"]["sparse_gradient"] is True
    assert checks["embeddingbag"]["weight_max_abs_diff_vs_exact"] > 0  # torch's Adam rule
    assert {(r["impl"], r["baseline"]) for r in report["speedups"]} == {
        ("ours", "embeddingbag"), ("ours_rows", "embeddingbag_sparse")}
    assert compare.main([str(out), str(out)]) == 0  # compare matches the step cases
