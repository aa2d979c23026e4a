"""Tests of :mod:`embeddings.runs.pictures` and the ``python -m embeddings.plot`` command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings import plot, train
from embeddings.model import SentimentClassifier, keras_initial_weights
from embeddings.runs import Run, load_run
from embeddings.runs.pictures import (
    CURVES_FILE,
    CURVES_SIZE,
    MAP_FILE,
    MAP_SIZE,
    png_size,
    project,
    run_name,
    word_logits,
    write_pictures,
)
from embeddings.testing import TINY_TRAIN_FLAGS, assert_close, cli_error, write_imdb_tree


def _corpus() -> dict[str, str]:
    words = ["movie", "film", "plot", "the", "a", "actor", "scene", "story"]
    return {f"{cls}/{i}_1.txt": f"{cue} {' '.join(words[i % 8:] + words[:i % 8])} {cue}"
            for cls, cue in (("neg", "bad"), ("pos", "good")) for i in range(12)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two tiny trained runs, ``a`` (2 epochs) and ``b`` (3 epochs)."""
    root = tmp_path_factory.mktemp("pictures")
    data = write_imdb_tree(root, _corpus())
    flags = list(TINY_TRAIN_FLAGS)
    for name, epochs in (("a", "2"), ("b", "3")):
        flags[flags.index("--epochs") + 1] = epochs
        assert train.main([*flags, "--data", str(data), "--out", str(root / name)]) == 0
    return root


def _write(run: Run, out: Path, **changes: object) -> list[str]:
    arguments = {"weights": run.weights, "vocabulary": run.vocabulary, "config": run.config,
                 "history": run.history, **changes}
    return write_pictures(out, **arguments)  # type: ignore[arg-type]


def test_word_logit_worked_by_hand() -> None:
    # V=3, D=H=1, T=4: pooled = (E[w] + 3 * E[0]) / 4, then relu(2x - 1), then 3h + 0.25.
    weights = {"embedding.embeddings": np.array([[0.5], [1.0], [3.0]], np.float32),
               "dense.kernel": np.array([[2.0]], np.float32),
               "dense.bias": np.array([-1.0], np.float32),
               "dense_1.kernel": np.array([[3.0]], np.float32),
               "dense_1.bias": np.array([0.25], np.float32)}
    # word 2: pooled 1.125 -> h 1.25 -> 4.0; word 1: 0.625 -> 0.25 -> 1.0; padding: 0.5 -> 0
    np.testing.assert_array_equal(word_logits(weights, [2, 1, 0], 4),
                                  np.array([4.0, 1.0, 0.25], np.float32))


def test_word_logit_is_the_models_output_for_the_word_alone() -> None:
    weights = keras_initial_weights(50, 8, 4, seed=3)
    weights["dense.bias"] = np.linspace(-0.1, 0.1, 4, dtype=np.float32)
    weights["dense_1.bias"] = np.array([0.2], np.float32)
    ids = torch.zeros(48, 7, dtype=torch.int64)  # each row: one word, then padding
    ids[:, 0] = torch.arange(2, 50)
    with torch.no_grad():
        expected = SentimentClassifier.from_weights(weights)(ids)
    assert_close(word_logits(weights, np.arange(2, 50), 7), expected, rtol=1e-5, atol=1e-6)


def test_word_logits_rejects_a_bad_sequence_length() -> None:
    weights = keras_initial_weights(5, 2, 2, seed=0)
    with pytest.raises(ValueError, match="sequence_length must be a positive integer"):
        word_logits(weights, [2], 0)


def test_project_finds_the_principal_axes_with_fixed_signs() -> None:
    points = np.array([[4, 0], [-1, 0], [-3, 0], [0, 2], [0, -1], [0, -1]], np.float32)
    expected = np.array([[4, 0], [-1, 0], [-3, 0], [0, 2], [0, -1], [0, -1]], np.float64)
    for given in (points, -points, points[:, ::-1], points + 10):
        coords, share = project(given)
        assert_close(coords, expected, rtol=1e-6, atol=1e-6)
        assert_close(share, [26 / 32, 6 / 32], rtol=1e-6, atol=1e-9)


def test_project_leaves_missing_axes_at_zero() -> None:
    coords, share = project(np.array([[1.0], [3.0]]))  # D = 1: one axis
    assert_close(coords, [[-1.0, 0.0], [1.0, 0.0]], rtol=0, atol=1e-12)
    assert_close(share, [1.0, 0.0], rtol=0, atol=1e-12)
    coords, share = project(np.ones((1, 4)))  # one point: no variance
    assert_close(coords, [[0.0, 0.0]], rtol=0, atol=0)


def test_run_name_is_the_folder_also_while_staged(tmp_path: Path) -> None:
    assert run_name(tmp_path / ".imdb.run.partial-00017-42-x1y2") == "imdb.run"
    assert run_name(tmp_path / "imdb.run") == "imdb.run"


def test_png_size_reads_the_header_and_refuses_other_files() -> None:
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (1200).to_bytes(4, "big") \
        + (500).to_bytes(4, "big")
    assert png_size(header) == (1200, 500)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(20))


def test_write_pictures_writes_both_pngs_at_their_size(runs: Path, tmp_path: Path) -> None:
    assert _write(load_run(runs / "b"), tmp_path) == [CURVES_FILE, MAP_FILE]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURVES_FILE, MAP_FILE]
    assert png_size((tmp_path / CURVES_FILE).read_bytes()) == CURVES_SIZE
    assert png_size((tmp_path / MAP_FILE).read_bytes()) == MAP_SIZE


def test_pictures_are_byte_identical_when_written_again(runs: Path, tmp_path: Path) -> None:
    run = load_run(runs / "a")
    _write(run, tmp_path / "1" / "run")  # the folder's name titles the pictures
    tensors = {k: torch.from_numpy(v) for k, v in run.weights.items()}  # as training passes
    _write(run, tmp_path / "2" / "run", weights=tensors)
    for name in (CURVES_FILE, MAP_FILE):
        assert (tmp_path / "1" / "run" / name).read_bytes() == \
            (tmp_path / "2" / "run" / name).read_bytes(), name


def test_pictures_differ_between_runs(runs: Path, tmp_path: Path) -> None:
    run = load_run(runs / "a")
    _write(run, tmp_path / "1" / "run")
    _write(run, tmp_path / "2" / "run", history=load_run(runs / "b").history)
    assert (tmp_path / "1" / "run" / CURVES_FILE).read_bytes() != \
        (tmp_path / "2" / "run" / CURVES_FILE).read_bytes()


def test_converted_run_gets_only_the_map(runs: Path, tmp_path: Path) -> None:
    assert _write(load_run(runs / "a"), tmp_path, history={}) == [MAP_FILE]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MAP_FILE]


def test_map_draws_any_token(tmp_path: Path) -> None:
    weights = keras_initial_weights(8, 3, 2, seed=1)
    vocabulary = ["", "[UNK]", "$\\frac{1}{0}$", "語", "x" * 60, "_", "&amp;", "caf\udce9"]
    config = {"text": {"sequence_length": 5}, "run": {}}
    assert write_pictures(tmp_path, weights=weights, vocabulary=vocabulary, config=config,
                          history={}) == [MAP_FILE]
    assert png_size((tmp_path / MAP_FILE).read_bytes()) == MAP_SIZE


def test_drawing_loads_matplotlib_lazily_and_never_pyplot(runs: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from embeddings.runs import load_run\n"
        "from embeddings.runs.pictures import write_pictures\n"
        "assert 'matplotlib' not in sys.modules\n"
        f"r = load_run({str(runs / 'a')!r})\n"
        f"write_pictures({str(tmp_path)!r}, weights=r.weights, vocabulary=r.vocabulary, "
        "config=r.config, history=r.history)\n"
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_plot_overlays_runs(runs: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "embeddings.plot", str(runs / "a"),
                           str(runs / "b")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == plot.DEFAULT_OUT
    assert png_size((tmp_path / plot.DEFAULT_OUT).read_bytes()) == CURVES_SIZE


def test_plot_replaces_an_existing_out_file(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare.png"
    out.write_bytes(b"old")
    assert plot.main([str(runs / "a"), "--out", str(out)]) == 0
    assert png_size(out.read_bytes()) == CURVES_SIZE


def test_plot_names_runs_by_folder_and_backend_or_by_path(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / "a", tmp_path / "x" / "a")
    given = [runs / "a", runs / "b", tmp_path / "x" / "a"]
    labels = plot.run_labels([load_run(p) for p in given], given)
    assert labels == [f"{runs / 'a'} (torch)", "b (torch)", f"{tmp_path / 'x' / 'a'} (torch)"]


def test_plot_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    err = cli_error(["embeddings.plot", str(tmp_path), "--out", str(tmp_path / "c.png")])
    assert "is not a run directory" in err
    assert not (tmp_path / "c.png").exists()


def test_plot_refuses_a_converted_run(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / "a", tmp_path / "converted")
    (tmp_path / "converted" / "history.json").write_text(json.dumps({}))
    err = cli_error(["embeddings.plot", str(runs / "a"), str(tmp_path / "converted"),
                     "--out", str(tmp_path / "c.png")])
    assert "converted model" in err and "converted" in err
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("out", ["curves.jpg", "folder.png"])
def test_plot_refuses_an_out_that_is_not_a_png_file(runs: Path, tmp_path: Path,
                                                   out: str) -> None:
    (tmp_path / "folder.png").mkdir()
    err = cli_error(["embeddings.plot", str(runs / "a"), "--out", str(tmp_path / out)])
    assert "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.png"]


def test_plot_needs_a_run() -> None:
    assert "RUN" in cli_error(["embeddings.plot"])
