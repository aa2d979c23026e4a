"""Every bad input of ``train`` and ``predict`` (docs/reliability.md): run as a user runs
it, it exits 2 with one short message naming the input and the fix, and changes nothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from embeddings import train
from embeddings.testing import TINY_TRAIN_FLAGS, cli_error, tree_state

TINY = TINY_TRAIN_FLAGS


@pytest.fixture
def tiny_run(small_imdb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "runs" / "good"
    assert train.main([*TINY, "--data", str(small_imdb), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(("flags", "phrase"), [
    (["--epoch", "3"], "unrecognized arguments: --epoch"),
    (["--epochs", "three"], "argument --epochs: invalid int value"),
    (["--backend", "jax"], "argument --backend: invalid choice: 'jax'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--epochs", "0"], "`--epochs` must lie between 1 and"),
    (["--batch-size", "-1"], "`--batch-size` must lie between 1 and"),
    (["--vocab-size", "2"], "`--vocab-size` must lie between 3 and"),
    (["--sequence-length", "0"], "`--sequence-length` must lie between 1 and"),
    (["--sequence-length", "1000000000000"], "`--sequence-length` must lie between 1 and"),
    (["--embedding-dim", "0"], "`--embedding-dim` must lie between 1 and"),
    (["--hidden-units", "-4"], "`--hidden-units` must lie between 1 and"),
    (["--validation-split", "0"], "`--validation-split` must lie strictly between 0 and 1"),
    (["--validation-split", "1.5"], "`--validation-split` must lie strictly between 0 and 1"),
    (["--learning-rate", "inf"], "`--learning-rate` must be a positive finite number"),
    (["--learning-rate", "nan"], "`--learning-rate` must be a positive finite number"),
    (["--learning-rate", "0"], "`--learning-rate` must be a positive finite number"),
    (["--seed", "-1"], "`--seed` must lie between 0 and 4,294,967,295"),
    (["--split-seed", "4294967296"], "`--split-seed` must lie between 0 and 4,294,967,295"),
])
def test_a_bad_flag_value_names_the_flag(flags: list[str], phrase: str, small_imdb: Path,
                                         tmp_path: Path) -> None:
    before = tree_state(tmp_path)
    err = cli_error(["embeddings.train", *TINY, *flags, "--data", str(small_imdb),
                     "--out", str(tmp_path / "run")])
    assert phrase in err
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize(("case", "phrase"), [
    ("split_leaves_empty_subset", "validation_split=0.001 of 40 reviews leaves a subset empty"),
    ("out_holds_a_run", "already exists and is not empty"),
    ("out_is_a_file", "already exists and is not empty"),
    ("out_not_writable", "cannot write or read"),
    ("too_large_for_memory", "GiB of memory, but"),
    ("tf_backend_without_tensorflow", "pip install"),
])
def test_a_bad_training_request_changes_nothing(case: str, phrase: str, small_imdb: Path,
                                                tiny_run: Path, tmp_path: Path) -> None:
    if case == "tf_backend_without_tensorflow" and _imports("tensorflow"):
        pytest.skip("TensorFlow is installed: --backend tf is valid here")
    out = tmp_path / "new"
    flags = {"split_leaves_empty_subset": ["--validation-split", "0.001"],
             "too_large_for_memory": ["--vocab-size", "2000000000", "--embedding-dim", "100000"],
             "tf_backend_without_tensorflow": ["--backend", "tf"]}.get(case, [])
    if case == "out_holds_a_run":
        out = tiny_run
    elif case == "out_is_a_file":
        out.write_text("notes")
    elif case == "out_not_writable" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        out = locked / "run"
    elif case == "out_not_writable":  # root may write anywhere but in /sys
        out = Path("/sys/embeddings-test-run")
    before = tree_state(tmp_path)
    err = cli_error(["embeddings.train", *TINY, "--data", str(small_imdb), *flags,
                     "--out", str(out)])
    assert phrase in err
    assert tree_state(tmp_path) == before


def _imports(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _damage(run: Path, case: str) -> None:
    """Break one file of a copy of a good run the way ``case`` says."""
    vocabulary = json.loads((run / "vocabulary.json").read_text())
    weights = run / "model.safetensors"
    config = json.loads((run / "config.json").read_text())
    if case == "no_weights":
        weights.unlink()
    elif case == "weights_garbage":
        weights.write_bytes(b"\x00" * 64)
    elif case == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif case == "weights_header_lies":
        data = bytearray(weights.read_bytes())
        data[0:8] = (2**40).to_bytes(8, "little")
        weights.write_bytes(bytes(data))
    elif case == "config_not_json":
        (run / "config.json").write_text("{oops")
    elif case == "config_newer_format":
        (run / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    elif case == "config_disagrees":
        config["model"]["embedding_dim"] = 7
        (run / "config.json").write_text(json.dumps(config))
    elif case == "vocabulary_object":
        (run / "vocabulary.json").write_text(json.dumps({"": 0}))
    elif case == "vocabulary_shortened":
        (run / "vocabulary.json").write_text(json.dumps(vocabulary[:3] + vocabulary[4:]))
    elif case == "vocabulary_reordered":
        (run / "vocabulary.json").write_text(json.dumps(vocabulary[1:2] + vocabulary[:1]
                                                        + vocabulary[2:]))
    elif case == "history_not_json":
        (run / "history.json").write_text("[1,")


@pytest.mark.parametrize(("case", "phrase"), [
    ("no_weights", "model.safetensors is missing"),
    ("weights_garbage", "model.safetensors is not a readable safetensors file"),
    ("weights_truncated", "model.safetensors is not a readable safetensors file"),
    ("weights_header_lies", "model.safetensors is not a readable safetensors file"),
    ("config_not_json", "config.json is not readable JSON"),
    ("config_newer_format", "format_version 99"),
    ("config_disagrees", "disagrees with model.safetensors"),
    ("vocabulary_object", "vocabulary.json must hold a JSON list"),
    ("vocabulary_shortened", "holds 11 tokens but config.json records vocabulary_size=12"),
    ("vocabulary_reordered", "must start with '' (padding) and '[UNK]'"),
    ("history_not_json", "history.json is not readable JSON"),
])
def test_a_damaged_run_is_named_by_predict(case: str, phrase: str, tiny_run: Path) -> None:
    _damage(tiny_run, case)
    before = tree_state(tiny_run.parent)
    err = cli_error(["embeddings.predict", "--run", str(tiny_run), "a good film"])
    assert phrase in err
    assert tree_state(tiny_run.parent) == before


@pytest.mark.parametrize(("argv", "phrase"), [
    (["a good film"], "the following arguments are required: --run"),
    (["--run", "RUN", "--backend", "jax", "x"], "argument --backend: invalid choice"),
    (["--run", "MISSING", "x"], "is not a run directory"),
])
def test_predict_refuses_bad_arguments(argv: list[str], phrase: str, tiny_run: Path,
                                       tmp_path: Path) -> None:
    paths = {"RUN": str(tiny_run), "MISSING": str(tmp_path / "nothing")}
    err = cli_error(["embeddings.predict", *[paths.get(a, a) for a in argv]])
    assert phrase in err


@pytest.mark.parametrize("tool", ["embeddings.train", "embeddings.predict",
                                  "embeddings.predict --backend keras", "benchmarks.hotloop"])
def test_cuda_without_a_gpu_is_refused_by_every_tool(tool: str, tiny_run: Path,
                                                      small_imdb: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    module, *flags = tool.split()
    flags += {"embeddings.train": [*TINY, "--data", str(small_imdb), "--out",
                                   str(tmp_path / "new")],
              "embeddings.predict": ["--run", str(tiny_run), "x"]}.get(module, [])
    before = tree_state(tmp_path)
    err = cli_error([module, *flags, "--device", "cuda"],
                    cwd=Path(__file__).resolve().parents[1])
    assert "sees no CUDA GPU" in err
    assert tree_state(tmp_path) == before


def test_convert_without_arguments_names_them() -> None:
    err = cli_error(["embeddings.convert"])
    assert "the following arguments are required: source, dest" in err


def test_a_good_run_still_predicts(tiny_run: Path) -> None:
    """The twin of the damaged-run cases: the undamaged run predicts, exit 0."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "embeddings.predict", "--run", str(tiny_run),
                           "a good film"], capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\ta good film\n")


@pytest.mark.parametrize("tool", ["embeddings.predict", "embeddings.evaluate",
                                  "embeddings.neighbors"])
def test_every_tool_that_reads_a_run_takes_run_latest(tool: str, small_imdb: Path,
                                                      tmp_path: Path) -> None:
    """``--run latest`` means the same in every tool: the newest run under ./runs."""
    import subprocess

    for name in ("older", "newer"):
        assert train.main([*TINY, "--data", str(small_imdb), "--out",
                           str(tmp_path / "runs" / name)]) == 0
    extra = {"embeddings.predict": ["good film"],
             "embeddings.evaluate": ["--data", str(small_imdb)],
             "embeddings.neighbors": ["good"]}[tool]
    proc = subprocess.run([sys.executable, "-m", tool, "--run", "latest", *extra],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"note: --run latest is {Path('runs') / 'newer'}" in proc.stderr
