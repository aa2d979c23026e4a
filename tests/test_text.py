"""TextVectorization against the worked cases of PARITY.md sections 1-5."""

from __future__ import annotations

import random
import string
from pathlib import Path

import numpy as np
import pytest

from embeddings.text import TextVectorization
from embeddings.text import tokens as text_tokens


def token_bytes(texts: list[str | bytes], standardize: str | None = "tutorial") -> list[bytes]:
    """The tokens the vectorizer sees for ``texts``, all rows flattened."""
    batch = text_tokens.as_texts(texts)
    standardized = text_tokens.standardize(batch, standardize, "utf-8")
    return text_tokens.split(batch, standardized, "whitespace", "utf-8").values.to_pylist()


def tokens(text: str | bytes, standardize: str | None = "tutorial") -> list[str]:
    """The tokens the vectorizer sees for ``text``."""
    return [t.decode("utf-8", "surrogateescape") for t in token_bytes([text], standardize)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ABC", ["abc"]),
        ("CLICHÉ Ä ΑΒΓ İ", ["clichÉ", "Ä", "ΑΒΓ", "İ"]),  # only A-Z are lowercased
        ("\u212a", ["\u212a"]),  # Kelvin sign stays; str.lower() would make ASCII 'k'
    ],
)
def test_lowercasing_is_ascii_only(raw: str, expected: list[str], text_path: str) -> None:
    assert tokens(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"caf\xe9!", [b"caf\xe9"]),
        (b"\xff<br />x", [b"\xff", b"x"]),
        (b"<BR />x<br/>y<br  />z<br /><br />w", [b"xbrybr", b"z", b"w"]),
        (b"<br <br />/>", [b"br"]),
        (b"don't stop-motion", [b"dont", b"stopmotion"]),
    ],
)
def test_tutorial_standardization_works_on_bytes(raw: bytes, expected: list[bytes],
                                                text_path: str) -> None:
    assert [t.encode("utf-8", "surrogateescape") for t in tokens(raw)] == expected


def test_standardization_equals_the_byte_formula_on_random_bytes(text_path: str) -> None:
    """PARITY.md E2: TF's standardization is a byte formula; check ours on random bytes."""
    lower = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())

    def formula(b: bytes) -> bytes:
        return b.translate(lower).replace(b"<br />", b" ").translate(None,
                                                                      string.punctuation.encode())

    rng = random.Random(0)
    pieces = [bytes([i]) for i in range(256)] + [b"<br />", b"<br", b" />", b"<BR />",
                                                 "é".encode(), "😀".encode()]
    texts = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(5000)]
    assert token_bytes(texts) == [t for b in texts for t in formula(b).split()]


def test_unicode_punctuation_is_kept() -> None:
    assert tokens("“quoted” — yes… it´s") == ["“quoted”", "—", "yes…", "it´s"]


def test_builtin_strip_does_not_replace_br(text_path: str) -> None:
    assert tokens("a<br />b", standardize="lower_and_strip_punctuation") == ["abr", "b"]


def test_split_on_ascii_whitespace_only() -> None:
    text = "a\tb\nc\x0bd\x0ce\rf g\u00a0h\u0085i\u3000j"
    expected = ["a", "b", "c", "d", "e", "f", "g\u00a0h\u0085i\u3000j"]
    assert tokens(text, standardize=None) == expected


def test_vocabulary_ties_break_by_descending_bytes(text_path: str) -> None:
    # PARITY.md E4: counts c=b=a=B=3, é=z=e=d=2, and [UNK] (5x) is dropped.
    vec = TextVectorization(standardize=None)
    vec.adapt(["c b a B é z e d [UNK]", "c b a B é z e d [UNK]", "c b a B [UNK] [UNK] [UNK]"])
    assert vec.get_vocabulary() == ["", "[UNK]", "c", "b", "a", "B", "é", "z", "e", "d"]


def test_max_tokens_counts_the_two_special_tokens(text_path: str) -> None:
    vec = TextVectorization(max_tokens=5, standardize=None)
    vec.adapt(["c b a B é z e d"] * 3 + ["c b a B"])
    assert vec.get_vocabulary() == ["", "[UNK]", "c", "b", "a"]
    assert vec.vocabulary_size() == 5


def test_sequences_truncate_pad_right_and_map_unknown_to_one(text_path: str) -> None:
    # PARITY.md E5.
    vec = TextVectorization(max_tokens=10, output_sequence_length=5)
    vec.adapt(["a b c d e f g"])
    out = vec(["a b c d e f g", "a b", "", "zz a", " \t "])
    assert out.dtype == np.int64
    assert out.tolist() == [[8, 7, 6, 5, 4], [8, 7, 0, 0, 0], [0] * 5, [1, 8, 0, 0, 0], [0] * 5]


def test_without_sequence_length_pads_to_longest(text_path: str) -> None:
    vec = TextVectorization(standardize=None)
    vec.adapt(["a a b"])
    assert vec(["a", "b a b"]).tolist() == [[2, 0, 0], [3, 2, 3]]
    assert vec("a").tolist() == [2]  # one string: one row without a batch axis, as in Keras


def test_str_and_bytes_give_the_same_ids(text_path: str) -> None:
    vec = TextVectorization(standardize="tutorial", output_sequence_length=4)
    vec.adapt([b"caf\xe9 caf\xc3\xa9 ok"])
    assert vec([b"caf\xe9 ok"]).tolist() == vec([b"caf\xe9 ok".decode("utf-8", "surrogateescape")
                                                 ]).tolist()
    assert vec([b"caf\xe9"]).tolist()[0][0] >= 2  # the invalid-UTF-8 token is in the vocabulary


def test_set_vocabulary_adds_special_tokens_and_reads_files(tmp_path: Path) -> None:
    vec = TextVectorization(standardize=None)
    vec.set_vocabulary(["good", "bad"])
    assert vec.get_vocabulary() == ["", "[UNK]", "good", "bad"]
    vec.set_vocabulary(["", "[UNK]", "good", "bad"])  # given in front: kept once
    assert vec.get_vocabulary() == ["", "[UNK]", "good", "bad"]
    path = tmp_path / "vocab.txt"
    # TensorFlow's TextFileInitializer: every line is a token after the special ids
    # (a literal [UNK] too), a trailing \r is dropped, the last newline is optional.
    path.write_bytes(b"bad\r\ngood\n[UNK]\nugly")
    vec.set_vocabulary(path)
    assert vec.get_vocabulary() == ["", "[UNK]", "bad", "good", "[UNK]", "ugly"]
    assert vec(["good bad ugly [UNK] worse"]).tolist() == [[3, 2, 5, 4, 1]]


def test_a_vocabulary_file_with_an_empty_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"a\n\nb\n")
    with pytest.raises(ValueError, match="empty line"):
        TextVectorization(vocabulary=path)


def test_the_mask_token_out_of_place_is_rejected() -> None:
    with pytest.raises(ValueError, match="mask token"):
        TextVectorization(vocabulary=["a", ""])
    # '[UNK]' after the start is an ordinary token, as in Keras (ids 2, 3, 4).
    assert TextVectorization(vocabulary=["a", "[UNK]", "b"], standardize=None)(
        ["b [UNK] a"]).tolist() == [[4, 3, 2]]


def test_large_batches_split_across_threads_give_the_same_result(text_path: str) -> None:
    rng = random.Random(1)
    texts = [" ".join(rng.choice("abcdefgh") * rng.randint(1, 3) for _ in range(rng.randint(0, 9)))
             for _ in range(9000)]
    whole = TextVectorization(max_tokens=12, output_sequence_length=6)
    whole.adapt(texts)
    parts = [TextVectorization(vocabulary=whole.get_vocabulary(), output_sequence_length=6)(
        texts[i:i + 1000]) for i in range(0, 9000, 1000)]
    assert np.array_equal(whole(texts), np.concatenate(parts))
    # The vocabulary counted across threads equals a plain count of the whole corpus.
    counts: dict[str, int] = {}
    for t in texts:
        for tok in t.split():
            counts[tok] = counts.get(tok, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0].encode()), reverse=True)[:10]
    assert whole.get_vocabulary()[2:] == [tok for tok, _ in ranked]


def test_callables_get_numpy_strings_as_on_kerass_other_backends() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []

    def standardize(texts: np.ndarray) -> np.ndarray:
        seen.append((texts.dtype.kind, texts.shape))
        return np.char.upper(texts)

    vec = TextVectorization(standardize=standardize,
                            split=lambda texts: [t.split(",") for t in texts])
    vec.adapt(["a,b,a", b"caf\xe9,b"])
    assert seen == [("U", (2, 1))]  # a 1-D adapt list is read as (N, 1), as Keras does
    # A byte that is not UTF-8 reaches the callable as a lone surrogate and comes back.
    assert vec.get_vocabulary() == ["", "[UNK]", "B", "A", "CAF\udce9"]
    assert vec([b"caf\xe9,a"]).tolist() == [[4, 3]]


def test_character_split() -> None:
    vec = TextVectorization(standardize=None, split="character")
    vec.adapt(["aéa"])
    assert vec.get_vocabulary() == ["", "[UNK]", "a", "é"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 1}, "max_tokens"),
        ({"standardize": "lowercase"}, "standardize"),
        ({"split": "words"}, "split"),
        ({"output_mode": "tfidf"}, "output_mode"),
        ({"output_mode": "one_hot"}, "split"),
        ({"output_sequence_length": 0}, "output_sequence_length"),
        ({"output_mode": "count", "output_sequence_length": 4}, "output_sequence_length"),
        ({"ngrams": 0}, "ngrams"),
        ({"ngrams": (1, "2")}, "ngrams"),
        ({"pad_to_max_tokens": True}, "max_tokens"),
        ({"idf_weights": [1.0]}, "output_mode"),
        ({"sparse": True}, "sparse"),
        ({"ragged": True, "output_mode": "count"}, "output_mode"),
        ({"encoding": "no-such-codec"}, "encoding"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"{message}.*Received"):
        TextVectorization(**kwargs)


def test_repeated_and_oversized_vocabularies_are_rejected() -> None:
    with pytest.raises(ValueError, match="repeated tokens.*'a'"):
        TextVectorization(vocabulary=["a", "b", "a"])
    with pytest.raises(ValueError, match="more than max_tokens"):
        TextVectorization(max_tokens=3, vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="empty vocabulary"):
        TextVectorization(vocabulary=[])


@pytest.mark.parametrize("mode", ["int", "count"])
def test_calling_without_a_vocabulary_says_what_to_do(mode: str) -> None:
    """As TensorFlow (its lookup table is uninitialized): before any vocabulary, and after
    an adapt that found no token; an adapt that found only '' or '[UNK]' fails."""
    vec = TextVectorization(output_mode=mode)
    with pytest.raises(RuntimeError, match="adapt"):
        vec(["text"])
    vec.adapt(["", "...", " "])
    with pytest.raises(RuntimeError, match="adapt"):
        vec(["text"])
    with pytest.raises(ValueError, match="no token besides"):
        TextVectorization(split=None, standardize=None).adapt(["", "[UNK]"])
    vec.adapt(["b a a"])
    vec.adapt([""])  # nothing counted: the vocabulary stays
    assert vec.get_vocabulary()[-2:] == ["a", "b"]


def test_non_text_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        TextVectorization(vocabulary=["a"])([3])


@pytest.mark.parametrize("max_tokens", [None, 3, 12, 40])
def test_compiled_and_arrow_counting_learn_the_same_vocabulary(
        max_tokens: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ties at the cut-off and a frequent literal [UNK] (counted, then dropped) included."""
    from embeddings.text import native

    if not native.available():
        pytest.skip("no C compiler: the compiled text kernels are unavailable")
    rng = random.Random(3)
    words = ["[UNK]", "a", "b", "ab", "ba", "é", "\x85x", "zz", "q", "Q"] + [f"w{i}" for i in
                                                                           range(60)]
    texts = ["  ".join(rng.choice(words[: rng.randint(1, len(words))])
                       for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    vocabularies = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(native, "available", lambda: False)
        vec = TextVectorization(max_tokens=max_tokens, standardize=None)
        vec.adapt(texts)
        vocabularies.append(vec.get_vocabulary())
    assert vocabularies[0] == vocabularies[1]
    assert "[UNK]" not in vocabularies[0][2:]


@pytest.mark.parametrize("standardize", ["tutorial", "lower_and_strip_punctuation", None])
@pytest.mark.parametrize("length", [1, 3, 30])
def test_compiled_and_arrow_encoding_give_the_same_ids(
        standardize: str | None, length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random bytes (invalid UTF-8, <br /> variants, punctuation inside and around tokens)."""
    from embeddings.text import native

    if not native.available():
        pytest.skip("no C compiler: the compiled text kernels are unavailable")
    rng = random.Random(5)
    pieces = [bytes([i]) for i in range(256)] + [b"<br />", b"<BR />", b"<br", b" />", b" a ",
                                                 b" the ", b"[UNK]", b" x.y ", "é".encode()] * 3
    texts = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 80)))
             for _ in range(3000)]
    vec = TextVectorization(max_tokens=50, standardize=standardize, output_sequence_length=length)
    vec.adapt(texts)
    compiled = vec(texts)
    monkeypatch.setattr(native, "available", lambda: False)
    assert np.array_equal(compiled, vec(texts))


def test_the_text_engine_imports_no_torch_keras_or_tensorflow() -> None:
    """The vectorizer can become a backend-agnostic Keras layer only if it stands alone."""
    import subprocess
    import sys

    code = ("import sys; from embeddings.text import TextVectorization; "
            "v = TextVectorization(output_sequence_length=3); v.adapt(['a b']); v(['a']); "
            "print(sorted(m for m in ('torch', 'keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# -- the rest of Keras's surface: worked by hand, and measured in TensorFlow 2.21 ------------

def test_ngrams_come_width_by_width_in_the_order_given() -> None:
    vec = TextVectorization(ngrams=(2, 1), output_sequence_length=6)
    vec.adapt(["a b c", "a"])
    # counts: a 2, then 1 each, ties by descending bytes: 'c' > 'b c' > 'b' > 'a b'
    assert vec.get_vocabulary() == ["", "[UNK]", "a", "c", "b c", "b", "a b"]
    assert vec(["a b c", "a"]).tolist() == [[6, 4, 2, 5, 3, 0], [2, 0, 0, 0, 0, 0]]
    assert TextVectorization(ngrams=2).get_config()["ngrams"] == 2


@pytest.mark.parametrize(("mode", "expected", "dtype"), [
    ("multi_hot", [[1, 1, 1], [0, 0, 0]], np.int64),  # TensorFlow returns int64 here
    ("count", [[1, 2, 1], [0, 0, 0]], np.int64),
])
def test_multi_hot_and_count_index_0_is_unknown(mode: str, expected: list[list[int]],
                                                dtype: type) -> None:
    vec = TextVectorization(vocabulary=["a", "b"], output_mode=mode)
    assert vec.get_vocabulary() == ["[UNK]", "a", "b"]
    out = vec(["a b a z", ""])
    assert out.dtype == dtype and out.tolist() == expected
    assert vec("a a").tolist() == [0, 1 if mode == "multi_hot" else 2, 0]  # no batch axis


def test_tf_idf_learns_keras_weights() -> None:
    vec = TextVectorization(output_mode="tf_idf")
    vec.adapt(["a b a", "b c", "c c c d"])
    assert vec.get_vocabulary() == ["[UNK]", "c", "b", "a", "d"]
    # log(1 + 3 / (1 + documents)): c and b are in 2 documents, a and d in 1; OOV: the mean.
    weights = np.log(1 + 3 / (1 + np.array([2, 2, 1, 1.0]))).astype(np.float32)
    assert vec.idf_weights is not None
    assert vec.idf_weights.tolist() == [np.float32(weights.astype(np.float64).mean())] + \
        weights.tolist()
    out = vec(["a b z a"])
    assert out.dtype == np.float32
    assert out.tolist() == [[vec.idf_weights[0], 0, weights[1], 2 * weights[2], 0]]


def test_given_idf_weights_are_padded_as_keras_pads_them() -> None:
    vec = TextVectorization(output_mode="tf_idf", vocabulary=["a", "b"], idf_weights=[0.1, 0.2],
                            max_tokens=5, pad_to_max_tokens=True)
    assert vec.idf_weights is not None
    assert vec.idf_weights.tolist() == [np.float32(0.15), np.float32(0.1), np.float32(0.2), 0, 0]
    assert vec(["a b z"]).tolist() == [[np.float32(0.15), np.float32(0.1), np.float32(0.2), 0, 0]]
    with pytest.raises(ValueError, match="as long as the vocabulary"):
        TextVectorization(output_mode="tf_idf", vocabulary=["a", "b"], idf_weights=[0.1])
    with pytest.raises(ValueError, match="idf_weights"):
        TextVectorization(output_mode="tf_idf", vocabulary=["a"])
    with pytest.raises(ValueError, match="file"):
        TextVectorization(output_mode="tf_idf").set_vocabulary("v.txt", idf_weights=[1.0])


def test_without_a_split_the_last_axis_holds_the_tokens() -> None:
    """Keras's dense path: a 1-D list is one row (n-grams join neighbours), (N, 1) is N."""
    vec = TextVectorization(vocabulary=["a", "b"], split=None)
    assert vec(["a", "b", ""]).tolist() == [2, 3, 0]
    assert vec([["a"], ["b"]]).tolist() == [[2], [3]]
    assert vec("a").tolist() == 2
    assert TextVectorization(vocabulary=["a", "b"], split=None, output_sequence_length=4)(
        ["a", "b"]).tolist() == [2, 3, 0, 0]
    assert TextVectorization(vocabulary=["a", "b"], split=None, ngrams=2)(
        ["a", "b"]).tolist() == [2, 3, 1]  # 'a b' is an n-gram of two strings
    one_hot = TextVectorization(vocabulary=["a", "b"], split=None, output_mode="one_hot")
    assert one_hot(["a", "b", "z"]).tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_ragged_output_is_a_list_of_rows() -> None:
    vec = TextVectorization(vocabulary=["baz", "bar", "foo"], ragged=True,
                            output_sequence_length=2)
    out = vec([["foo qux bar"], ["qux baz"], ["foo"]])
    assert [row.tolist() for row in out] == [[4, 1], [1, 2], [4]]


def test_pad_to_max_tokens_fixes_the_width() -> None:
    vec = TextVectorization(vocabulary=["foo", "bar"], max_tokens=8, pad_to_max_tokens=True,
                            output_mode="multi_hot")
    assert vec(["foo bar"]).shape == (1, 8)


def test_vocabulary_size_is_fixed_once_set_in_count_modes() -> None:
    vec = TextVectorization(output_mode="count")
    vec.set_vocabulary(["a", "b"])
    with pytest.raises(RuntimeError, match="fixed once set"):
        vec.set_vocabulary(["a", "b", "c"])
    padded = TextVectorization(output_mode="count", max_tokens=9, pad_to_max_tokens=True)
    padded.set_vocabulary(["a"])
    padded.set_vocabulary(["a", "b", "c"])
    assert padded.vocabulary_size() == 4


def test_adapting_after_a_given_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="Cannot adapt"):
        TextVectorization(vocabulary=["a"]).adapt(["a b"])


def test_adapt_reads_lists_arrays_generators_and_dataset_columns_alike() -> None:
    import datasets

    texts = ["a b b", "c b", "a d d d", "b"]
    expected = ["", "[UNK]", "b", "d", "a", "c"]
    column = datasets.Dataset.from_dict({"text": texts})["text"]
    sources = [texts, tuple(texts), np.array(texts), np.array(texts, dtype=object),
               [[t] for t in texts], iter([texts[:2], texts[2:]]), column]
    for source in sources:
        vec = TextVectorization()
        vec.adapt(source)
        assert vec.get_vocabulary() == expected, type(source)
    for batch_size in (1, 3):
        vec = TextVectorization()
        vec.adapt(texts, batch_size=batch_size)
        assert vec.get_vocabulary() == expected
    vec = TextVectorization()
    vec.adapt(texts, batch_size=2, steps=1)  # the first batch only
    assert vec.get_vocabulary() == ["", "[UNK]", "b", "c", "a"]
    vec = TextVectorization()
    vec.adapt(iter([["x"], ["y y"], ["z"]]), steps=2)
    assert vec.get_vocabulary() == ["", "[UNK]", "y", "x"]


def test_adapt_refuses_a_dataset_of_rows_and_bad_counts() -> None:
    import datasets

    with pytest.raises(ValueError, match=r"ds\['text'\]"):
        TextVectorization().adapt(datasets.Dataset.from_dict({"text": ["a"]}))
    for bad in ({"batch_size": 0}, {"steps": -1}, {"batch_size": 1.5}):
        with pytest.raises(ValueError, match="positive integer"):
            TextVectorization().adapt(["a"], **bad)


def test_tf_idf_counts_a_generators_1d_batch_without_split_as_one_document() -> None:
    """Keras's update_state: a rank-1 batch of tokens is one document."""
    vec = TextVectorization(output_mode="tf_idf", split=None)
    vec.adapt(iter([["a", "b"], ["a"]]))  # 2 documents: {a, b} and {a}
    assert vec.idf_weights is not None
    assert vec.idf_weights[1:].tolist() == np.log(1 + 2 / (1 + np.array([2, 1.0]))).astype(
        np.float32).tolist()


def test_config_round_trip_gives_the_same_layer() -> None:
    vec = TextVectorization(max_tokens=20, ngrams=(1, 3), output_mode="tf_idf",
                            vocabulary=["a", "b c"], idf_weights=[0.5, 1.5], standardize="lower")
    config = vec.get_config()
    assert config["ngrams"] == (1, 3) and config["vocabulary"] == ["a", "b c"]
    again = TextVectorization.from_config({**config, "ngrams": [1, 3]})  # as JSON gives it
    assert again.get_config() == config
    assert np.array_equal(again(["A b C a"]), vec(["A b C a"]))


def test_assets_keep_learned_tokens_byte_for_byte(tmp_path: Path) -> None:
    vec = TextVectorization(standardize=None)
    vec.adapt([b"caf\xe9 \xc2\x85 \xe2\x80\xa8 x x"])
    vec.save_assets(tmp_path)
    again = TextVectorization(standardize=None)
    again.load_assets(tmp_path)
    assert again.get_vocabulary() == vec.get_vocabulary()
    assert "caf\udce9" in again.get_vocabulary()  # not UTF-8: surrogateescape


def test_encoding_decodes_the_vocabulary() -> None:
    vec = TextVectorization(standardize=None, encoding="latin-1")
    vec.adapt([b"caf\xe9"])
    assert vec.get_vocabulary()[2:] == ["café"]
    assert TextVectorization(standardize=None, vocabulary=["x"]).get_vocabulary()[2:] == ["x"]


@pytest.mark.usefixtures("text_path")
def test_adapting_batch_by_batch_merges_counts_into_one_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts merged every 2 parts rank as counted at once: c 3, b 2, then the ties a 1 and
    d 1 with greater bytes first."""
    from embeddings.text import vocabulary

    monkeypatch.setattr(vocabulary, "MAX_PARTS", 2)
    vec = TextVectorization(max_tokens=6)
    vec.reset_state()
    for batch in (["a b"], ["b c"], ["c c"], ["d"]):
        vec.update_state(batch)
        assert vec._counts is not None and len(vec._counts.parts) < 2
    vec.finalize_state()
    assert vec.get_vocabulary() == ["", "[UNK]", "c", "b", "d", "a"]
