"""Differential fuzzing of the text engine against Keras's layer on TensorFlow.

Hypothesis draws a configuration (output mode, standardization, split, n-grams,
``max_tokens``, padding, sequence length, ragged output), texts made of pieces that break ports
(Unicode letters and case pairs, ASCII and Unicode whitespace, punctuation, ``<br />``
variants, invalid UTF-8 and random bytes, emoji, literal ``[UNK]``) and how they are fed
(a list, ``(N, 1)`` rows, or ``adapt`` on a generator), runs the case in TensorFlow and in
the engine, and compares them with :func:`parity_tests.text_compare.differences`.  It
prints one JSON line: the number of examples run and the failures; a failure is shrunk
to a minimal case, to be added to ``text_cases.REGRESSIONS``.

Usage (an interpreter with the ``tf`` extra and ``hypothesis``)::

    python parity_tests/reference/fuzz_text.py [--examples 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_text_reference import run_case  # noqa: E402
from text_cases import MODES, SPLITS, STANDARDIZE  # noqa: E402

from parity_tests.text_compare import differences, run_ours  # noqa: E402

PIECES = [
    "a", "b", "the", "The", "THE", "ab", "x", "[UNK]", "[unk]", "UNK", "É", "é", "e\u0301",
    "İ", "ı", "Σ", "ς", "ß", "ẞ", "\u212a", "Ǆ", "ǅ", "Ａ", "К", "ﬁ", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷",
    " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\u00a0", "\u0085", "\u2028", "\u3000",
    "\u200b", "\ufeff", "\x1c", "\x00", "<br />", "<BR />", "<br/>", "<br", " />", "<br  />",
    "!", ".", ",", "'", "-", "_", "\\", "“", "”", "—", "…", "´", "\udce9", "\udcff", "\udcc3",
    "\udced\udca0\udc80", "\udcf0\udc9f\udc98", "\udcc0\udcaf",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    raw = st.binary(max_size=4).map(lambda b: b.decode("utf-8", "surrogateescape"))
    piece = st.one_of(st.sampled_from(PIECES), st.text(max_size=4), raw)
    text = st.lists(piece, max_size=12).map("".join)
    texts = st.lists(text, min_size=1, max_size=6)

    @st.composite
    def configs(draw: Any) -> dict[str, Any]:
        mode = draw(st.sampled_from((*MODES, "one_hot")))
        config: dict[str, Any] = {"output_mode": mode,
                                  "standardize": draw(st.sampled_from(STANDARDIZE)),
                                  "split": None if mode == "one_hot" else
                                  draw(st.sampled_from(SPLITS))}
        ngrams = draw(st.sampled_from([None, None, 2, 3, [1, 3], [2, 1], [3]]))
        if ngrams is not None:
            config["ngrams"] = ngrams
        max_tokens = draw(st.sampled_from([None, None, 3, 4, 6, 10, 25]))
        if max_tokens is not None:
            config["max_tokens"] = max_tokens
            if mode != "int" and draw(st.booleans()):
                config["pad_to_max_tokens"] = True
        if mode == "int":
            length = draw(st.sampled_from([None, 1, 2, 5, 12]))
            if length is not None:
                config["output_sequence_length"] = length
            if draw(st.booleans()):
                config["ragged"] = True
        return config

    run = {"examples": 0, "failures": []}
    workdir = Path(tempfile.mkdtemp())

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(configs(), texts, texts, st.sampled_from(["list", "column", "batches"]))
    def compare(config: dict[str, Any], adapt: list[str], extra: list[str], shape: str) -> None:
        run["examples"] += 1
        inputs: list[Any] = adapt + extra
        case: dict[str, Any] = {"name": "fuzz", "config": config, "adapt": adapt}
        if shape == "column":  # (N, 1) texts, as Keras's docs feed them
            inputs = [[t] for t in inputs]
        elif shape == "batches":  # adapt on a generator: each batch is counted as given
            case = {**case, "adapt": None, "adapt_batches": [adapt[:2], adapt[2:] or [""]]}
        case["inputs"] = inputs
        found = differences(case, run_ours(case, workdir), run_case(case, tf, keras, workdir))
        if found:
            run["failures"].append({"case": case, "differences": found})
            raise AssertionError(found)

    try:
        compare()
        ok = True
    except AssertionError:
        ok = False
    minimal = run["failures"][-1:]  # hypothesis reports the shrunk example last
    print(json.dumps({"examples": run["examples"], "ok": ok, "minimal_failure": minimal},
                     ensure_ascii=True), flush=True)


if __name__ == "__main__":
    main()
