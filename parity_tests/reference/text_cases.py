"""The text-engine cases recorded from TensorFlow (``make_text_reference.py``) and replayed
offline (``test_text_modes_parity.py``): strings built to break ports, the configurations
they run under, and every regression the differential fuzzer (``fuzz_text.py``) found.

A case is JSON: ``config`` (``TextVectorization`` arguments; ``standardize="tutorial"`` is
the tutorial's custom standardization), then one of ``adapt`` (a list of texts),
``adapt_batches`` (a generator of these batches) or ``vocabulary`` (a list, or
``{"file": text}`` for a vocabulary file) with ``idf_weights``, and ``inputs`` (a text, a
list of texts, or rows of texts).  Texts are ``str``; bytes that are not UTF-8 are held as
``surrogateescape`` code points and become bytes again before either side sees them.
"""

from __future__ import annotations

from typing import Any


def _b(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# Strings built to break ports (PARITY.md sections 1-5): Unicode case, invalid UTF-8, HTML
# breaks, Unicode whitespace, empty and blank texts, punctuation in and around tokens,
# repeats that make ties, and long texts for truncation.
BREAKERS: list[str] = [
    "",
    " ",
    "\t\n\r\x0b\x0c ",
    "CLICHÉ cliché Ä ΑΒΓ Σσς İ I ß ẞ Ǆ ǅ ＡＢＣ К",
    "\u212a Kelvin \u212b Angstrom k",
    _b(b"caf\xe9! na\xefve caf\xc3\xa9"),
    _b(b"\xc3( \xed\xa0\x80. \xc0\xaf. \xe2\x80. \xff<br />x \xf4\x90\x80\x80 \xf0\x9f\x98"),
    "<BR />x<br/>y<br  />z<br /><br />w <br <br />/> first<br />second <Br />third",
    "a\u00a0b c\u0085d e\u2028f g\u3000h i\u200bj k\ufeffl m\u1680n o\x1cp",
    "“quoted” — yes… it´s ¡hola! ¿qué? «guillemets» dash–dash",
    "Don't stop-motion, it's e-mail: a.b.c; x/y (z) [UNK] [unk] UNK _under_",
    "emoji 😀😀 👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
    "the the the THE The tHe a a A b B",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3,
    "x",
    "x y",
    "  leading and trailing  ",
    "tab\tsep\tvalues\nnew line\r\ncrlf",
    "combining e\u0301 vs \u00e9 n\u0303",
    "\x00nul\x00 \x7fdel \x1besc",
    "1 2 3 4 5 6 7 8 9 10 11 12 100 1000",
    "...!!!???",
    "<br />",
    "[UNK]",
]
# Texts only called on, never adapted on (unknown tokens).
UNSEEN: list[str] = ["zebra quagga", "CLICHÉ ZEBRA", _b(b"\xfe\xfe"), "", "a b c unseen"]

MODES = ("int", "multi_hot", "count", "tf_idf")
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None, "tutorial")
SPLITS = ("whitespace", "character", None)
# Regressions found by the fuzzer (fuzz_text.py), each replayed offline.
REGRESSIONS: list[dict[str, Any]] = [
    # An adapt that counts no token leaves TensorFlow's lookup table uninitialized:
    # calling the layer then fails (the engine raised nothing and returned zeros).
    {"name": "regression-adapt-without-tokens", "config": {"output_mode": "int"},
     "adapt": [""], "inputs": ["", ""]},
    # ragged=True without a split: TensorFlow's rows are dense, so the output is a dense
    # tensor, cut to the sequence length but never padded (the engine returned a list).
    {"name": "regression-ragged-without-split", "config": {"split": None, "ragged": True},
     "adapt": ["a"], "inputs": [["a"], [""]]},
    {"name": "regression-ragged-without-split-length",
     "config": {"split": None, "ragged": True, "output_sequence_length": 3},
     "adapt": ["a", "b"], "inputs": ["a", "b", "a", "zz", "b"]},
]


def _case(name: str, config: dict[str, Any], **rest: Any) -> dict[str, Any]:
    rest.setdefault("adapt", BREAKERS)
    rest.setdefault("inputs", BREAKERS + UNSEEN)
    return {"name": name, "config": config, **rest}


def cases() -> list[dict[str, Any]]:
    """Every recorded case, each with a unique name."""
    out = []
    for mode in MODES:
        for standardize in STANDARDIZE:
            for split in SPLITS:
                out.append(_case(f"{mode}-{standardize}-{split}",
                                 {"output_mode": mode, "standardize": standardize,
                                  "split": split}))
        for ngrams in (2, 3, [1, 3], [2, 1]):
            out.append(_case(f"{mode}-ngrams{ngrams}", {"output_mode": mode, "ngrams": ngrams}))
        out.append(_case(f"{mode}-character-ngrams", {"output_mode": mode, "split": "character",
                                                      "ngrams": 2}))
        for max_tokens in (4, 9, 30):  # cut-offs inside runs of tied counts
            out.append(_case(f"{mode}-max{max_tokens}", {"output_mode": mode,
                                                         "max_tokens": max_tokens,
                                                         "standardize": None}))
        # Keras's dense path: without a split the input's last axis holds the tokens.
        out.append(_case(f"{mode}-nosplit-column", {"output_mode": mode, "split": None},
                         inputs=[[t] for t in BREAKERS + UNSEEN]))
        out.append(_case(f"{mode}-scalar", {"output_mode": mode},
                         inputs="The quick brown fox, the LAZY dog zebra"))
        out.append(_case(f"{mode}-column", {"output_mode": mode},
                         inputs=[[t] for t in BREAKERS]))
        # A generator's 1-D batch without a split is ONE document (Keras's update_state).
        out.append(_case(f"{mode}-batches-nosplit", {"output_mode": mode, "split": None},
                         adapt=None, adapt_batches=[BREAKERS[:8], BREAKERS[8:], ["x", "x"]]))
        out.append(_case(f"{mode}-batches", {"output_mode": mode, "ngrams": 2}, adapt=None,
                         adapt_batches=[BREAKERS[:8], BREAKERS[8:]]))
    for mode in ("multi_hot", "count", "tf_idf"):
        for max_tokens in (30, 500):
            out.append(_case(f"{mode}-pad{max_tokens}", {"output_mode": mode,
                                                         "max_tokens": max_tokens,
                                                         "pad_to_max_tokens": True}))
    for length in (1, 5, 40):  # truncation, and n-grams that must not reach the padding
        for ngrams in (None, 2, [2, 1]):
            out.append(_case(f"int-length{length}-ngrams{ngrams}",
                             {"output_sequence_length": length, "ngrams": ngrams}))
    out.append(_case("int-nosplit-rank1-length", {"split": None, "output_sequence_length": 6},
                     inputs=["a", "b", "zz"]))
    out.append(_case("int-nosplit-rows", {"split": None, "ngrams": 2},
                     inputs=[["the", "a", "zz"], ["x", "x", ""], ["", "", ""]]))
    for length in (None, 3):  # TensorFlow returns a RaggedTensor, the engine a list
        out.append(_case(f"int-ragged-length{length}", {"ragged": True,
                                                        "output_sequence_length": length}))
    one_hot = {"output_mode": "one_hot", "split": None}
    out.append(_case("one_hot-list", one_hot))
    out.append(_case("one_hot-column", one_hot, inputs=[[t] for t in BREAKERS + UNSEEN]))
    out.append(_case("one_hot-rows", one_hot, inputs=[["the", "a", "zz"], ["x", "", "b"]]))
    out.append(_case("one_hot-scalar", one_hot, inputs="the"))
    out.append(_case("one_hot-ngrams", {**one_hot, "ngrams": [1, 2]}))
    out.extend(_given_vocabularies())
    out.extend(REGRESSIONS)
    return out


def _given_vocabularies() -> list[dict[str, Any]]:
    words = ["the", "a", "cliché", "[UNK]", "caf", "x", "b"]
    out = [_case("int-vocabulary-not-utf8", {}, adapt=None,
                 vocabulary=["the", _b(b"caf\xe9"), _b(b"\xff")])]
    for mode in MODES:
        out.append(_case(f"{mode}-vocabulary", {"output_mode": mode}, adapt=None,
                         vocabulary=words,
                         idf_weights=[0.5, 0.25, 1.5, 2.0, 0.1, 3.0, 0.7]
                         if mode == "tf_idf" else None))
        specials = ["[UNK]"] if mode != "int" else ["", "[UNK]"]
        out.append(_case(f"{mode}-vocabulary-with-specials", {"output_mode": mode},
                         adapt=None, vocabulary=specials + words,
                         idf_weights=[0.9] * len(specials) + [0.5, 0.25, 1.5, 2.0, 0.1, 3.0,
                                                              0.7] if mode == "tf_idf" else None))
    out.append(_case("tf_idf-vocabulary-padded", {"output_mode": "tf_idf", "max_tokens": 12,
                                                  "pad_to_max_tokens": True},
                     adapt=None, vocabulary=words, idf_weights=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                                                                1 / 3]))
    for mode in ("int", "count"):
        out.append(_case(f"{mode}-vocabulary-file", {"output_mode": mode, "standardize": None},
                         adapt=None, vocabulary={"file": "the\r\na\n[UNK]\ncliché\nx"}))
    return out
