"""Scoring a run: the metrics against worked cases, the validation subset against the
run's own history, the test split, every backend and a converted TensorFlow model, and
the command line's errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from embeddings import data, evaluate, predict, runs, train
from embeddings.testing import cli_error, make_tarball, tree_state

# A split and seed other than the tutorial's, so that evaluate must read the run's own;
# 3 epochs at 1e-2 end at val_accuracy 8 / 12, which float32 rounds (float64 would not).
ARGS = ["--epochs", "3", "--batch-size", "8", "--vocab-size", "20", "--sequence-length", "12",
        "--device", "cpu", "--learning-rate", "0.01", "--validation-split", "0.3",
        "--split-seed", "5"]
FIXTURES = Path(__file__).resolve().parents[1] / "parity_tests" / "fixtures" / "keras"
TEST_REVIEWS = {"neg/0_1.txt": "bad bad movie", "neg/1_2.txt": "bad film <br />plot",
                "neg/2_3.txt": "a good story but bad", "pos/0_9.txt": "good good film",
                "pos/1_8.txt": "good scene", "pos/2_7.txt": b"good \xff actor"}


def add_test_split(base: Path) -> Path:
    """Write :data:`TEST_REVIEWS` under ``base/test`` (``base`` is the ``aclImdb`` folder)."""
    for rel, content in TEST_REVIEWS.items():
        path = base / "test" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return base


@pytest.fixture
def run_dir(small_imdb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


def last_val_accuracy(run_dir: Path) -> float:
    history = json.loads((run_dir / "history.json").read_text())
    return float(history["val_accuracy"][-1])


# -- the metrics -----------------------------------------------------------------------------


def test_metrics_match_a_worked_example() -> None:
    """Probability > 0.5 is logit > 0: predicted 1, 1, 0, 1, 0, 1 against labels 1, 1, 0,
    0, 1, 0 is tp 2, tn 1, fp 2, fn 1.  Logit > 0.5 (Keras) predicts 1, 0, 0, 1, 0, 1: two
    right.  AUC: of the 9 (positive, negative) pairs, 2.0 beats all 3 negatives, 0.3 and
    -0.2 beat -1.0: 5 / 9."""
    logits = torch.tensor([2.0, 0.3, -1.0, 0.7, -0.2, 0.6])
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    result = evaluate.score(logits, labels, "test", "here")
    assert result.confusion_matrix == [[1, 2], [1, 2]]
    assert result.accuracy == pytest.approx(3 / 6, abs=1e-7)
    assert result.keras_accuracy == pytest.approx(2 / 6, abs=1e-7)
    assert result.precision == pytest.approx(2 / 4, abs=1e-7)
    assert result.recall == pytest.approx(2 / 3, abs=1e-7)
    assert result.f1 == pytest.approx(4 / 7, abs=1e-7)
    assert result.roc_auc == pytest.approx(5 / 9, abs=1e-7)
    assert (result.reviews, result.split, result.source) == (6, "test", "here")


def test_logits_inside_zero_one_are_still_logits() -> None:
    """torchmetrics would read outputs inside [0, 1] as probabilities (0.2 -> class 0);
    they are logits, so sigmoid(0.2) > 0.5 -> class 1.  One class: no AUC."""
    result = evaluate.score(torch.tensor([0.2, 0.4]), torch.tensor([1, 1]))
    assert (result.accuracy, result.keras_accuracy, result.roc_auc) == (1.0, 0.0, None)
    assert result.confusion_matrix == [[0, 0], [0, 2]]


def test_json_object_has_the_documented_keys() -> None:
    result = evaluate.score(torch.tensor([2.0, -2.0]), torch.tensor([1, 0]), "validation")
    assert list(result.as_dict()) == ["accuracy", "keras_accuracy", "precision", "recall", "f1",
                                      "roc_auc", "confusion_matrix", "reviews", "split"]
    assert json.loads(json.dumps(result.as_dict()))["confusion_matrix"] == [[1, 0], [0, 1]]


@pytest.mark.parametrize(("logits", "labels", "phrase"), [
    (torch.zeros(0), torch.zeros(0, dtype=torch.int64), "non-empty"),
    (torch.zeros(3), torch.zeros(2, dtype=torch.int64), r"labels.shape=\(2,\)"),
    (torch.zeros(2), torch.tensor([0, 2]), "labels must be 0 .neg. or 1 .pos.. Received: .0, 2."),
])
def test_score_rejects_bad_inputs(logits: torch.Tensor, labels: torch.Tensor,
                                  phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        evaluate.score(logits, labels)


# -- the validation subset: the run's own ----------------------------------------------------


def test_validation_reproduces_the_last_val_accuracy(run_dir: Path, small_imdb: Path) -> None:
    result = evaluate.evaluate(run_dir)  # the run recorded --data: no source needed
    assert result.keras_accuracy == last_val_accuracy(run_dir)  # exactly
    assert result.keras_accuracy == float(torch.tensor(8 / 12, dtype=torch.float32)) != 8 / 12
    assert result.split == "validation" and result.reviews == 12  # 30 % of 40, the run's split
    assert result.source == str(small_imdb)


def test_validation_is_the_rows_the_run_held_out(run_dir: Path, small_imdb: Path) -> None:
    """The scores are those of the logits of the run's validation rows, and not of the
    tutorial's default split of the same reviews."""
    own = data.load_splits(small_imdb, validation_split=0.3, seed=5, batch_size=8).val
    result = evaluate.evaluate(run_dir)
    labels = torch.tensor(own["label"])
    expected = evaluate.score(predict.logits(data.exact_texts(own), run_dir), labels,
                              "validation", str(small_imdb))
    assert result == expected
    other = data.load_splits(small_imdb).val
    assert sorted(other["path"]) != sorted(own["path"])


def test_keras_backend_run_reproduces_its_val_accuracy(small_imdb: Path, tmp_path: Path) -> None:
    pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    out = tmp_path / "keras-run"
    assert train.main([*ARGS, "--backend", "keras", "--data", str(small_imdb),
                       "--out", str(out)]) == 0
    for backend in ("torch", "keras"):
        result = evaluate.evaluate(out, backend=backend)
        assert result.keras_accuracy == last_val_accuracy(out), backend


@pytest.mark.imdb
def test_tutorial_run_reproduces_its_val_accuracy_on_the_real_data(tmp_path: Path) -> None:
    """5,000 validation reviews, many near the threshold: the tutorial's run, scored again,
    gives its last ``val_accuracy`` bit for bit (0.8028 for seed 0)."""
    out = tmp_path / "run"
    assert train.main(["--device", "cpu", "--out", str(out)]) == 0
    result = evaluate.evaluate(out)
    assert result.reviews == 5000
    assert result.keras_accuracy == last_val_accuracy(out)
    assert result.keras_accuracy == pytest.approx(0.8028, abs=5e-5)


# -- the test split, other runs ---------------------------------------------------------------


def test_test_split_scores_the_test_reviews(run_dir: Path, small_imdb: Path,
                                            tmp_path: Path) -> None:
    add_test_split(small_imdb)
    archive = tmp_path / "labelled.tar.gz"
    make_tarball(small_imdb, archive)
    test, _ = data.load_test(small_imdb)
    expected = evaluate.score(predict.logits(data.exact_texts(test), run_dir),
                              torch.tensor(test["label"]), "test")
    for source in (small_imdb, archive):
        result = evaluate.evaluate(run_dir, split="test", data=source)
        assert result.reviews == 6 and result.split == "test"
        assert result.as_dict() == expected.as_dict()
    assert evaluate.evaluate(run_dir, split="test").reviews == 6  # the run's --data has it


def test_converted_tensorflow_model_is_scored(small_imdb: Path, tmp_path: Path) -> None:
    """A model saved by the TensorFlow tutorial, converted: no history, its own
    vocabulary and sequence length; the tutorial's split of the reviews."""
    pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    from embeddings import convert

    out = convert.keras_to_run(FIXTURES / "tutorial_small.keras", tmp_path / "from-tf")
    run = runs.load_run(out)
    assert run.history == {}
    result = evaluate.evaluate(run, data=small_imdb)
    val = data.load_splits(small_imdb).val
    assert result.reviews == len(val) == 8
    assert result == evaluate.score(predict.logits(data.exact_texts(val), run),
                                    torch.tensor(val["label"]), "validation", str(small_imdb))
    assert not any("history.json" in line for line in evaluate.report(result, run))


# -- the command line ------------------------------------------------------------------------


def test_cli_prints_labelled_lines_and_json(run_dir: Path, small_imdb: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--run", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "run", "split", "accuracy", "keras_accuracy", "precision", "recall", "f1", "roc_auc",
        "confusion_matrix"]
    assert "equals history.json's last val_accuracy" in lines[3]
    assert evaluate.main(["--run", str(run_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == evaluate.evaluate(run_dir).as_dict()
    assert printed["keras_accuracy"] == last_val_accuracy(run_dir)
    add_test_split(small_imdb)
    assert evaluate.main(["--run", str(run_dir), "--split", "test", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["split"], printed["reviews"]) == ("test", 6)
    assert sum(map(sum, printed["confusion_matrix"])) == 6


@pytest.mark.parametrize(("case", "phrase"), [
    ("missing run", "does not exist"),
    ("not a run", "is not a run directory: model.safetensors is missing"),
    ("unknown split", "invalid choice: 'train'"),
    ("no test split", "No test split in"),
    ("missing data", "does not exist"),
])
def test_cli_mistakes_exit_2_in_one_message(case: str, phrase: str, run_dir: Path,
                                            tmp_path: Path) -> None:
    args = {"missing run": ["--run", str(tmp_path / "nope")],
            "not a run": ["--run", str(tmp_path)],
            "unknown split": ["--run", str(run_dir), "--split", "train"],
            "no test split": ["--run", str(run_dir), "--split", "test"],
            "missing data": ["--run", str(run_dir), "--data", str(tmp_path / "none")]}[case]
    before = tree_state(tmp_path)
    message = cli_error(["embeddings.evaluate", *args], env={"EMBEDDINGS_DATA": ""})
    assert phrase in message, message
    assert tree_state(tmp_path) == before


def test_unknown_split_or_backend_is_rejected_by_the_library(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate.evaluate(run_dir, split="train")
    with pytest.raises(ValueError, match="backend must be one of"):
        evaluate.evaluate(run_dir, backend="tf")
    assert os.path.isdir(run_dir)
