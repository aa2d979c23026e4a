"""benchmarks.ranks: one process against two torchrun ranks, reported side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ranks


def test_the_report_holds_both_runs_and_their_differences(small_imdb: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "ranks.json"
    flags = (f"--epochs 2 --batch-size 8 --vocab-size 20 --sequence-length 12 --device cpu "
             f"--data {small_imdb}")
    assert ranks.main(["--train-args", flags, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "ranks" and report["ranks"] == 2
    one, two = report["history"]["one"], report["history"]["ranks"]
    assert len(one["loss"]) == len(two["loss"]) == 2
    for key, largest in report["max_abs_difference"].items():
        assert largest == max(abs(a - b) for a, b in zip(one[key], two[key], strict=True))
    assert report["max_abs_difference"]["val_accuracy"] <= 0.002
    assert set(report["weights_max_abs_difference"]) == {
        "embedding.embeddings", "dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"}
    assert all(w > 0 for w in report["wall_s"].values())
    assert "report: " in capsys.readouterr().out


def test_a_failing_training_and_a_single_rank_are_refused(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert ranks.main(["--ranks", "1"]) == 2
    assert "--ranks must be at least 2" in capsys.readouterr().err
    assert ranks.main(["--train-args", f"--data {tmp_path / 'absent'}", "--out",
                       str(tmp_path / "r.json")]) == 2
    assert "training failed" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
