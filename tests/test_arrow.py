"""Arrow arrays built from their buffers (:mod:`embeddings.arrow`), and what a training
run leaves unloaded: pandas, ``datasets`` and ``torch._dynamo`` each cost a tutorial run
0.2-0.75 s and tens of MB, for nothing it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from embeddings import arrow
from embeddings.testing import TINY_TRAIN_FLAGS, make_tarball


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float32, np.float64,
                                   np.bool_])
def test_numbers_round_trip_whole_sliced_and_chunked(dtype: type) -> None:
    values = (np.arange(37) % 5).astype(dtype)  # (37,)
    array = arrow.numbers(values)
    assert array.type == pa.from_numpy_dtype(np.dtype(dtype)) and array.to_pylist() == \
        values.tolist()
    for got, expected in ((array, values), (array.slice(3, 30), values[3:33]),
                          (array.slice(9, 0), values[:0]),
                          (pa.chunked_array([array.slice(1, 5), array]),
                           np.concatenate([values[1:6], values]))):
        out = arrow.to_numpy(got)
        assert out.dtype == values.dtype and out.tolist() == expected.tolist()


def test_to_numpy_fills_nulls_and_matches_arrow() -> None:
    found = pc.index_in(arrow.binary([b"a", b"zz", b"b", None, b"a"]),
                        value_set=arrow.binary([b"b", b"a"]))  # int32 with nulls
    assert arrow.to_numpy(found, fill=-1).tolist() == [1, -1, 0, -1, 1]
    assert arrow.to_numpy(found.slice(1, 3), fill=-7).tolist() == [-7, 0, -7]
    flags = pc.equal(pc.binary_length(arrow.binary([b"", b"x", b""])),
                     arrow.numbers(np.zeros(3, np.int64)))
    assert arrow.to_numpy(flags).tolist() == [True, False, True]
    assert arrow.to_numpy(flags.slice(1)).tolist() == [False, True]


def test_binary_keeps_bytes_and_nulls() -> None:
    values = [b"caf\xe9", None, b"", b"x" * 1000, None]
    array = arrow.binary(values)
    assert array.type == pa.large_binary() and array.null_count == 2
    assert array.to_pylist() == values
    assert arrow.binary([]).to_pylist() == []


def test_nothing_here_imports_pandas() -> None:
    """pyarrow imports pandas at the first ``pa.array``, ``pa.scalar`` or ``to_numpy``:
    these helpers must not (a fresh process, with pandas installed)."""
    code = """
import sys, numpy as np, pyarrow.compute as pc
from embeddings import arrow
ids = pc.index_in(arrow.binary([b"a", None]), value_set=arrow.binary([b"a"]))
arrow.to_numpy(ids, fill=-1); arrow.to_numpy(arrow.numbers(np.arange(3)))
arrow.to_numpy(arrow.numbers(np.ones(3, bool)))
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_a_training_run_loads_no_pandas_datasets_or_dynamo(small_imdb: Path,
                                                           tmp_path: Path) -> None:
    """The tutorial's run from a tarball (the IMDb path): the modules it has no use for
    stay unloaded to its end, pictures and checkpoints included."""
    archive = tmp_path / "imdb.tar.gz"
    make_tarball(small_imdb, archive)
    code = f"""
import json, sys
from embeddings import train
status = train.main(["--data", {str(archive)!r}, *{TINY_TRAIN_FLAGS!r},
                     "--out", {str(tmp_path / "run")!r}])
print(json.dumps([status, [m for m in ("pandas", "datasets", "torch._dynamo")
                           if m in sys.modules]]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    status, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 0 and loaded == []
    assert (tmp_path / "run" / "curves.png").is_file()
