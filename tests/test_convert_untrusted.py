"""``python -m embeddings.convert`` on hostile and malformed Keras files, built by hand.

Every refusal is checked at the command line: exit status 2, one ``error: ...`` line that
names the problem, no traceback, and nothing written (no run, no hidden staging folder).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embeddings import convert, runs
from embeddings.keras_file import CONFIG_MEMBER, VOCABULARY_LIMIT, WEIGHTS_MEMBER
from embeddings.testing import cli_error, tree_state

h5py = pytest.importorskip("h5py", reason="the keras extra is not installed")
pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "parity_tests" / "fixtures" / "keras"
KERAS, WEIGHTS = FIXTURES / "tutorial_small.keras", FIXTURES / "tutorial_small.weights.h5"
VOCABULARY = FIXTURES / "tutorial_small.vocabulary.txt"
TABLE = "layers/embedding/vars/0"  # the embedding table, (1000, 16) float32
MARKER = b"TOPSECRET-"  # the bytes of the file an attack tries to copy
GIB = 2**30


def assert_refused(source: Path, dest: Path, phrase: str | tuple[str, ...],
                   *extra: str | Path, module: str = "embeddings.convert",
                   env: dict[str, str] | None = None) -> str:
    """Convert ``source`` to ``dest`` at the command line and check the refusal (the error
    policy of :func:`cli_error`), whose message must hold ``phrase`` (each of them, for a
    tuple), and that nothing appeared beside ``dest``, hidden or not.

    Returns:
        str: the error line.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    before = tree_state(dest.parent)
    err = cli_error([module, str(source), str(dest), *map(str, extra)], env=env)
    assert all(p in err for p in ((phrase,) if isinstance(phrase, str) else phrase)), err
    assert not dest.exists()
    assert tree_state(dest.parent) == before
    return err


def rewrite(h5: Path, name: str, make: Callable[[h5py.File, str, np.ndarray], None]) -> None:
    """Replace dataset ``name`` of ``h5`` by what ``make(file, name, old_values)`` creates."""
    with h5py.File(h5, "r+") as f:
        values = f[name][()]
        del f[name]
        make(f, name, values)


def keras_file(path: Path, *, weights: Path | None = None, config: Any = None) -> Path:
    """The fixture's ``.keras`` archive with its weights or config replaced (``config`` as
    JSON-ready data, or raw bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(KERAS) as src, zipfile.ZipFile(path, "w") as out:
        replaced: dict[str, bytes] = {}
        if weights is not None:
            replaced[WEIGHTS_MEMBER] = weights.read_bytes()
        if config is not None:
            replaced[CONFIG_MEMBER] = (config if isinstance(config, bytes)
                                               else json.dumps(config).encode())
        for name in src.namelist():
            out.writestr(name, replaced.get(name) or src.read(name))
    return path


def fixture_config() -> dict[str, Any]:
    with zipfile.ZipFile(KERAS) as archive:
        config: dict[str, Any] = json.loads(archive.read(CONFIG_MEMBER))
    return config


def write_zeros_member(path: Path, name: str, size: int) -> None:
    """Add a member of ``size`` zero bytes (deflated, so the archive stays small)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(name, "w", force_zip64=True) as out:
            chunk = bytes(2**24)
            for _ in range(size // len(chunk)):
                out.write(chunk)


# HDF5 attacks: each rewrites the embedding table of a copy of the fixture's weights.

def _external_storage(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    secret = tmp / "secret.bin"
    secret.write_bytes(MARKER * (values.nbytes // len(MARKER) + 1))
    f.create_dataset(name, shape=values.shape, dtype="<f4",
                     external=[(str(secret), 0, values.nbytes)])


def _external_link(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    with h5py.File(tmp / "other.h5", "w") as other:
        other.create_dataset("table", data=values)
    f[name] = h5py.ExternalLink(str(tmp / "other.h5"), "/table")


def _soft_link(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    f[name] = h5py.SoftLink("/optimizer/vars/2")  # Adam's moments: the same shape


def _virtual(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    with h5py.File(tmp / "other.h5", "w") as other:
        other.create_dataset("table", data=values)
    layout = h5py.VirtualLayout(shape=values.shape, dtype="<f4")
    layout[:] = h5py.VirtualSource(str(tmp / "other.h5"), "table", shape=values.shape)
    f.create_virtual_dataset(name, layout)


def _gzip(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    f.create_dataset(name, data=values, compression="gzip")


def _gzip_huge(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    f.create_dataset(name, shape=(40_000_000, 16), dtype="<f4", chunks=(2**16, 16),
                     compression="gzip")


def _declared_huge(f: h5py.File, name: str, values: np.ndarray, tmp: Path) -> None:
    f.create_dataset(name, shape=(40_000_000, 16), dtype="<f4")  # never written: no storage


ATTACKS = {
    "external_storage": (_external_storage, "external storage"),
    "external_link": (_external_link, "external link"),
    "soft_link": (_soft_link, "soft link"),
    "virtual_dataset": (_virtual, "virtual dataset"),
    "gzip_filter": (_gzip, "filtered (deflate)"),
    "gzip_huge": (_gzip_huge, "filtered (deflate)"),
    "declared_huge": (_declared_huge, "declares shape (40000000, 16)"),
}


@pytest.mark.parametrize("container", ["weights.h5", "keras"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_hdf5_storage_is_refused(attack: str, container: str, tmp_path: Path) -> None:
    make, phrase = ATTACKS[attack]
    h5 = tmp_path / "src" / "model.weights.h5"
    h5.parent.mkdir()
    shutil.copyfile(WEIGHTS, h5)
    rewrite(h5, TABLE, lambda f, name, values: make(f, name, values, tmp_path))
    assert h5.stat().st_size < WEIGHTS.stat().st_size + 2**16  # the huge ones stay small
    if container == "keras":
        source = keras_file(tmp_path / "src" / "model.keras", weights=h5)
        err = assert_refused(source, tmp_path / "out" / "run", phrase)
    else:
        err = assert_refused(h5, tmp_path / "out" / "run", phrase, "--vocabulary", VOCABULARY)
    assert TABLE in err
    secret = tmp_path / "secret.bin"
    for path in tmp_path.rglob("*"):  # the secret's bytes were copied nowhere
        assert path == secret or not path.is_file() or MARKER not in path.read_bytes(), path


def test_unneeded_huge_asset_is_never_read(tmp_path: Path) -> None:
    """A 1 GiB asset that the model does not use: converts, and peak memory stays low."""
    source = keras_file(tmp_path / "model.keras")
    write_zeros_member(source, "assets/junk.bin", GIB)
    assert source.stat().st_size < 8 * 2**20
    code = ("import resource, subprocess, sys\n"
            "proc = subprocess.run([sys.executable, '-m', 'embeddings.convert', *sys.argv[1:]])\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "sys.exit(proc.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(source), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    peak_kib = int(proc.stdout.splitlines()[-1])
    assert peak_kib < GIB // 2**10, peak_kib  # reading the asset alone would take 1 GiB
    assert len(runs.load_run(tmp_path / "run").vocabulary) == 1000


def test_oversized_vocabulary_asset_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model.keras"
    key = "assets/layers/text_vectorization/vocabulary.txt"
    with zipfile.ZipFile(KERAS) as src, zipfile.ZipFile(source, "w") as out:
        for name in src.namelist():
            if name != key:
                out.writestr(name, src.read(name))
    write_zeros_member(source, key, VOCABULARY_LIMIT + 2**24)
    assert_refused(source, tmp_path / "out" / "run", f"{key} is 285,212,672 bytes, more than")


def _set_layer(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(config: dict[str, Any]) -> Any:
        config["config"]["layers"][index]["config"][key] = value
        return config
    return edit


def _del_layer_key(index: int, key: str) -> Callable[[dict[str, Any]], Any]:
    def edit(config: dict[str, Any]) -> Any:
        del config["config"]["layers"][index][key]
        return config
    return edit


# Layers of the fixture: 0 InputLayer, 1 TextVectorization, 2 Embedding, 3 pooling, 4-5 Dense.
BAD_CONFIGS: dict[str, tuple[Callable[[dict[str, Any]], Any], str | tuple[str, ...]]] = {
    "not_json": (lambda c: b"{not json", "config.json is not readable JSON"),
    "not_utf8": (lambda c: b"\xff\xfe\x00{", "config.json is not readable JSON"),
    "too_deep": (lambda c: b"[" * 100_000, "config.json is not readable JSON"),
    "a_list": (lambda c: [c], "`config.json` must be an object"),
    "no_layers": (lambda c: {**c, "config": {"name": "sequential"}},
                  "`config.layers` must be a list. Received: config.layers=None"),
    "layers_a_string": (lambda c: {**c, "config": {"layers": "dense"}},
                        "`config.layers` must be a list"),
    "layer_a_number": (lambda c: {**c, "config": {"layers": [7]}},
                       "`config.layers[0]` must be an object"),
    "no_class_name": (_del_layer_key(2, "class_name"), "`config.layers[2].class_name` must be"),
    "no_layer_config": (_del_layer_key(4, "config"), "`config.layers[4].config` must be an"),
    "name_not_a_string": (_set_layer(4, "name", 3), "`config.layers[4].config.name` must be"),
    "not_the_tutorial": (lambda c: {**c, "config": {"layers": c["config"]["layers"][:3]}},
                         "is not the tutorial model"),
    "sequence_length_a_string": (_set_layer(1, "output_sequence_length", "100"),
                                 "`config.layers[1].config.output_sequence_length` must be"),
    "sequence_length_huge": (_set_layer(1, "output_sequence_length", 10**12),
                             ("`config.layers[1].config.output_sequence_length`: ",
                              "sequence_length=1000000000000")),
    "sequence_length_negative": (_set_layer(1, "output_sequence_length", -1),
                                 ("`config.layers[1].config.output_sequence_length`: ",
                                  "sequence_length=-1")),
    "standardize_unknown": (_set_layer(1, "standardize", "rot13"),
                            "`config.layers[1].config.standardize` must be one of Keras's"),
    "standardize_a_number": (_set_layer(1, "standardize", 1),
                             "`config.layers[1].config.standardize` must be a string or"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_malformed_config_is_refused(case: str, tmp_path: Path) -> None:
    edit, phrase = BAD_CONFIGS[case]
    source = keras_file(tmp_path / "src" / "model.keras", config=edit(fixture_config()))
    assert_refused(source, tmp_path / "out" / "run", phrase)


def _shrink_dense(f: h5py.File, name: str, values: np.ndarray) -> None:
    f.create_dataset(name, data=values[:8])  # dense kernel (8, 16): D no longer 16


def _nan(f: h5py.File, name: str, values: np.ndarray) -> None:
    values[5, 3] = np.nan
    f.create_dataset(name, data=values)


def _float64(f: h5py.File, name: str, values: np.ndarray) -> None:
    f.create_dataset(name, data=values.astype(np.float64))


BAD_WEIGHTS = {
    "inconsistent_shapes": ("layers/dense/vars/0", _shrink_dense, "do not fit together"),
    "nan": (TABLE, _nan, f"{TABLE} (layer 'embedding') holds 1 NaN or infinite"),
    "float64": (TABLE, _float64, "must hold float32 weights, not float64"),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_weight_values_are_refused(case: str, tmp_path: Path) -> None:
    name, make, phrase = BAD_WEIGHTS[case]
    h5 = tmp_path / "src" / "model.weights.h5"
    h5.parent.mkdir()
    shutil.copyfile(WEIGHTS, h5)
    rewrite(h5, name, make)
    assert_refused(h5, tmp_path / "out" / "run", phrase, "--vocabulary", VOCABULARY)


def test_huge_sequence_length_flag_is_refused(tmp_path: Path) -> None:
    assert_refused(KERAS, tmp_path / "out" / "run",
                   ("--sequence-length: ", "sequence_length=1000000000000"),
                   "--sequence-length", "1000000000000")


def test_weights_larger_than_memory_are_refused(tmp_path: Path) -> None:
    """Through a launcher module that reports 100 KB of available memory (less than four
    copies of the 65 KB table) and runs the command line."""
    (tmp_path / "small_memory.py").write_text(
        "import sys\n"
        "from embeddings import convert, memory\n"
        "memory.available_bytes = lambda: 100_000\n"
        "sys.exit(convert.main())\n")
    assert_refused(WEIGHTS, tmp_path / "out" / "run", ("bytes of weights needs about",
                                                        "GiB are available"),
                   "--vocabulary", VOCABULARY, module="small_memory",
                   env={"PYTHONPATH": str(tmp_path)})


@pytest.fixture
def fixture_run(tmp_path: Path) -> Path:
    return convert.keras_to_run(KERAS, tmp_path / "run")


def test_versioned_exports_keep_their_own_vocabularies(fixture_run: Path,
                                                       tmp_path: Path) -> None:
    other = tmp_path / "run2"
    shutil.copytree(fixture_run, other)
    tokens = json.loads((other / runs.VOCABULARY_FILE).read_text())
    tokens[2], tokens[3] = tokens[3], tokens[2]
    (other / runs.VOCABULARY_FILE).write_text(json.dumps(tokens))
    folder = tmp_path / "exports"
    assert convert.main([str(fixture_run), str(folder / "model.v1.keras")]) == 0
    assert convert.main([str(other), str(folder / "model.v2.keras")]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.v1.keras", "model.v1.vocabulary.txt", "model.v2.keras",
        "model.v2.vocabulary.txt"]
    for version, run in (("v1", fixture_run), ("v2", other)):
        back = convert.keras_to_run(folder / f"model.{version}.keras", tmp_path / version)
        assert runs.load_run(back).vocabulary == runs.load_run(run).vocabulary


@pytest.mark.parametrize("existing", ["model.keras", "model.vocabulary.txt"])
def test_export_never_overwrites(existing: str, fixture_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / existing).write_bytes(b"precious")
    before = sorted(folder.iterdir())
    err = cli_error(["embeddings.convert", str(fixture_run), str(folder / "model.keras")])
    assert f"{folder / existing} already exists" in err
    assert "remove it or choose another path" in err
    assert (folder / existing).read_bytes() == b"precious"
    assert sorted(folder.iterdir()) == before


def test_an_export_that_was_killed_is_cleaned_up_by_the_next(fixture_run: Path,
                                                             tmp_path: Path) -> None:
    """Staging left by a killed export (no live owner) is removed, and the export lands."""
    folder = tmp_path / "exports"
    (folder / ".model.keras.partial-00000000000000000001-1-dead").mkdir(parents=True)
    (folder / ".model.keras.partial-00000000000000000001-1-dead" / "model.keras").write_text("x")
    convert.run_to_keras(fixture_run, folder / "model.keras")
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "model.vocabulary.txt"]


def test_a_file_appearing_during_an_export_is_kept(fixture_run: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks before the work are repeated when the files are placed: a file that
    appeared meanwhile is neither replaced nor left half-paired with a new vocabulary."""
    from embeddings.keras_model import keras

    target = tmp_path / "model.keras"
    real_save = keras.Model.save

    def save_then_race(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        real_save(self, path, *args, **kwargs)
        target.write_bytes(b"theirs")  # another writer finishes first

    monkeypatch.setattr(keras.Model, "save", save_then_race)
    with pytest.raises(convert.InvalidInput, match="already exists"):
        convert.run_to_keras(fixture_run, target)
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir() if p.parent == tmp_path
                  and p.name.startswith(("model", "."))) == ["model.keras"]
