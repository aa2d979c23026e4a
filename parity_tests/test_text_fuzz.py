"""Differential fuzzing of the text engine against TensorFlow (``nox -s parity_live``).

``reference/fuzz_text.py`` runs in TensorFlow's interpreter: Hypothesis draws at least
:data:`EXAMPLES` cases (configurations, texts that break ports, ways of feeding them) and
each runs in Keras on TensorFlow and in the engine.  Zero mismatches are allowed; a
failure comes back shrunk, to be kept in ``reference/text_cases.REGRESSIONS`` (replayed
offline by ``test_text_modes_parity.py``).  The seed is ``$EMBEDDINGS_FUZZ_SEED``
(default 0), so a failing run can be repeated.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from embeddings.testing import tensorflow_python

EXAMPLES = 2000
FUZZER = Path(__file__).parent / "reference" / "fuzz_text.py"


@pytest.mark.tf
def test_fuzzing_against_tensorflow_finds_no_mismatch(report) -> None:  # type: ignore[no-untyped-def]
    python, env = tensorflow_python()
    seed = os.environ.get("EMBEDDINGS_FUZZ_SEED", "0")
    proc = subprocess.run([python, str(FUZZER), "--examples", str(EXAMPLES), "--seed", seed],
                          capture_output=True, text=True, env=env, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    report.check(f"text engine: fuzzed cases differing from TensorFlow (seed {seed})", "engine",
                 0 if result["ok"] else 1, 0, f"{result['examples']} generated cases")
    assert result["examples"] >= EXAMPLES
    assert result["ok"], f"shrunk failing case (add it to REGRESSIONS): " \
        f"{json.dumps(result['minimal_failure'], ensure_ascii=True)}"
