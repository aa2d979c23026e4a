"""Tests of ``benchmarks/accuracy.py`` and its fastText worker, end to end on a tiny
``aclImdb`` archive with both labelled splits (the 40 reviews of ``small_corpus`` in each)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _fasttext_worker as worker
from benchmarks import accuracy, compare
from embeddings.data import Review
from embeddings.testing import cli_error, make_tarball, write_imdb_tree
from tests.conftest import small_corpus
from tests.test_data import add_test_split

REPO = Path(__file__).resolve().parents[1]
HAS_FASTTEXT = importlib.util.find_spec("fasttext") is not None
NEEDS_FASTTEXT = "needs fastText: pip install 'embeddings[bench]' (fasttext-numpy2)"
TRAIN_ARGS = "--epochs 1 --batch-size 8"
# glibc zeroes every allocation: fastText leaves most of a small input matrix as allocated
# (see benchmarks._fasttext_worker), which on this tiny corpus can hold NaNs.
ENV = {"MALLOC_PERTURB_": "255", "EMBEDDINGS_DATA": ""}


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **ENV}, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzipped ``aclImdb`` with ``train/`` and ``test/``, 40 reviews each."""
    root = tmp_path_factory.mktemp("imdb")
    base = add_test_split(write_imdb_tree(root, small_corpus()), small_corpus())
    archive = root / "labelled.tar.gz"
    make_tarball(base, archive)
    return archive


@pytest.fixture(scope="module")
def measured(labelled: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[dict[str, Any], Path, str]:
    """One run of the benchmark (fastText included when installed): the report, its path
    and the printed table."""
    out = tmp_path_factory.mktemp("report") / "report.json"
    args = ["benchmarks.accuracy", "--data", str(labelled), "--presets", "tutorial",
            "--train-args", TRAIN_ARGS, "--repeats", "1", "--out", str(out)]
    proc = _run(args + ([] if HAS_FASTTEXT else ["--skip-fasttext"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), out, proc.stdout


def test_preset_case_reports_time_memory_and_test_accuracy(measured: tuple[dict[str, Any],
                                                                          Path, str]) -> None:
    report, _, table = measured
    assert report["benchmark"] == "accuracy"
    assert report["data"]["n_train_reviews"] == 40 and report["data"]["n_test_reviews"] == 40
    case = report["cases"]["tutorial"]
    assert case["kind"] == "preset"
    assert "-m embeddings.train --preset tutorial --data " in case["command"]
    assert case["command"].endswith("--out '<tmpdir>/tutorial-<i>' --epochs 1 --batch-size 8")
    assert len(case["wall"]["times_s"]) == 1 and case["wall"]["median_s"] > 0
    assert case["wall"]["iqr_s"] == 0.0
    assert case["peak_rss_mib"] > 0 and len(case["peak_rss_mib_each"]) == 1
    (score,) = case["test_accuracy"]
    assert 0.0 <= score <= 1.0 and case["test_reviews"] == 40
    assert report["config"]["train_args"] == ["--epochs", "1", "--batch-size", "8"]
    assert "tutorial" in table and "fastest:" in table


def test_preset_accuracy_is_what_evaluate_reports_for_the_same_training(
        measured: tuple[dict[str, Any], Path, str], labelled: Path, tmp_path: Path) -> None:
    # Our training is deterministic: the same command trains the same model again.
    report, _, _ = measured
    out = tmp_path / "run"
    trained = _run(["embeddings.train", "--preset", "tutorial", "--data", str(labelled),
                    "--out", str(out), *TRAIN_ARGS.split()])
    assert trained.returncode == 0, trained.stderr[-3000:]
    scored = _run(["embeddings.evaluate", "--run", str(out), "--split", "test", "--data",
                   str(labelled), "--json"])
    assert scored.returncode == 0, scored.stderr[-3000:]
    expected = json.loads(scored.stdout.strip().splitlines()[-1])["accuracy"]
    assert report["cases"]["tutorial"]["test_accuracy"] == [expected]


def test_fasttext_cases_train_on_every_training_review(
        measured: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = measured
    if not HAS_FASTTEXT:
        assert report["cases"]["fasttext"] == {"kind": "fasttext",
                                               "skipped": "skipped: --skip-fasttext"}
        pytest.skip(NEEDS_FASTTEXT)
    for name, ngrams, epochs in (("fasttext", 1, 5), ("fasttext-bigrams", 2, 10)):
        case = report["cases"][name]
        assert case["kind"] == "fasttext"
        assert case["fasttext"] == {"wordNgrams": ngrams, "epoch": epochs, "dim": 100,
                                    "lr": 0.1, "bucket": 0 if ngrams == 1 else 2_000_000,
                                    "words": 11}  # 8 words, good, bad and </s>
        assert case["train_reviews"] == 40 and case["test_reviews"] == 40
        assert f"--word-ngrams {ngrams} --epoch {epochs} --threads 2" in case["command"]
        assert 0 < case["wall"]["median_s"]
        assert 0 < case["peak_rss_mib"] <= case["process_peak_rss_mib"]
        # Every review carries its class's cue word: a sound classifier gets nearly all.
        (score,) = case["test_accuracy"]
        assert 0.9 <= score <= 1.0
    summary = report["summary"]
    assert summary["baseline"] == "fasttext-bigrams"
    assert summary["wall_ratio_to_baseline"]["fasttext-bigrams"] == 1.0
    ratio = (report["cases"]["tutorial"]["wall"]["median_s"]
             / report["cases"]["fasttext-bigrams"]["wall"]["median_s"])
    assert summary["wall_ratio_to_baseline"]["tutorial"] == pytest.approx(ratio, rel=1e-12,
                                                                         abs=0.0)
    assert summary["fastest"] == min(report["cases"], key=lambda n: report["cases"][n]["wall"]
                                     ["median_s"])


def test_compare_reads_two_accuracy_reports(measured: tuple[dict[str, Any], Path, str],
                                            tmp_path: Path) -> None:
    report, path, _ = measured
    slower = json.loads(json.dumps(report))
    slower["cases"]["tutorial"]["wall"]["median_s"] *= 3
    b = tmp_path / "b.json"
    b.write_text(json.dumps(slower))
    proc = _run(["benchmarks.compare", str(path), str(b)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("tutorial ")]
    assert " 3.000 " in line
    result = compare.compare(report, slower)
    measured_cases = {name for name, c in report["cases"].items() if "wall" in c}
    assert {m.key[0] for m in result.matched} == measured_cases
    (tutorial,) = [m for m in result.matched if m.key == ("tutorial",)]
    assert tutorial.a.accuracy == report["cases"]["tutorial"]["test_accuracy"][0]


def test_standardized_lines_follow_the_tutorial() -> None:
    reviews = [Review("pos/0_9.txt", b"Great<br />MOVIE!! It's\tfun\r\n", 1),
               Review("neg/0_1.txt", b"   ", 0), Review("neg/1_2.txt", b"caf\xe9, bad.", 0)]
    assert worker.standardized_lines(reviews) == [b"great movie its fun", b"", b"caf\xe9 bad"]


def test_training_file_has_one_labelled_line_per_review_shuffled(tmp_path: Path) -> None:
    reviews = [Review(f"{'neg' if i < 5 else 'pos'}/{i}_1.txt", f"Review {i}!".encode(),
                      int(i >= 5)) for i in range(10)]
    path = tmp_path / "train.txt"
    worker.training_file(reviews, path, seed=0)
    lines = path.read_bytes().splitlines()
    expected = [f"__label__{'neg' if i < 5 else 'pos'} review {i}".encode() for i in range(10)]
    assert sorted(lines) == sorted(expected)
    assert lines != expected  # the reader's order (every neg first) is shuffled
    worker.training_file(reviews, path, seed=0)
    assert path.read_bytes().splitlines() == lines  # the same seed, the same order


@pytest.mark.parametrize(("case", "phrase"), [
    ("missing data", "does not exist"),
    ("no test split", "No test split in"),
    ("no data at all", "--data is required"),
    ("reserved train flag", "--train-args must not set --preset, --data, --out"),
    ("no repeats", "--repeats must be at least 1. Received: --repeats=0"),
    ("preset named like fastText", "must not use fastText's case names"),
    ("nothing to measure", "nothing to measure"),
])
def test_mistakes_exit_2_in_one_message(case: str, phrase: str, labelled: Path,
                                        tmp_path: Path) -> None:
    train_only = tmp_path / "train-only.tar.gz"
    make_tarball(write_imdb_tree(tmp_path, small_corpus()), train_only)
    out = str(tmp_path / "report.json")
    args = {"missing data": ["--data", str(tmp_path / "none.tar.gz")],
            "no test split": ["--data", str(train_only)],
            "no data at all": [],
            "reserved train flag": ["--data", str(labelled), "--train-args=--out=x"],
            "no repeats": ["--data", str(labelled), "--repeats", "0"],
            "preset named like fastText": ["--data", str(labelled), "--presets", "fasttext"],
            "nothing to measure": ["--data", str(labelled), "--presets", "",
                                   "--skip-fasttext"]}[case]
    message = cli_error(["benchmarks.accuracy", *args, "--out", out], env=ENV, cwd=REPO)
    assert phrase in message, message
    assert not Path(out).exists()


def test_unusable_fasttext_names_the_extra(labelled: Path, tmp_path: Path) -> None:
    # A fasttext that cannot be imported (here one that raises, first on the path).
    (tmp_path / "fasttext.py").write_text("raise ImportError('no fastText here')\n")
    message = cli_error(["benchmarks.accuracy", "--data", str(labelled), "--out",
                         str(tmp_path / "report.json")],
                        env={**ENV, "PYTHONPATH": os.pathsep.join(
                            [str(tmp_path), os.environ.get("PYTHONPATH", "")])}, cwd=REPO)
    assert "pip install 'embeddings[bench]'" in message and "--skip-fasttext" in message
    assert not (tmp_path / "report.json").exists()


def test_train_args_split_as_a_shell_line() -> None:
    args = accuracy.parse_args(["--data", "x", "--train-args", "--device cpu --seed '3'",
                                "--presets", "bigrams, tutorial,bigrams"])
    assert args.train_args == ["--device", "cpu", "--seed", "3"]
    assert args.presets == ["bigrams", "tutorial"]
