"""The constructor arguments of ``TextVectorization``: Keras's rules, checked up front.

Each mistake raises ``ValueError`` naming the argument and the rule, ending
``Received: name=value``.  Combinations Keras refuses are refused alike; ``sparse=True``
too, since without TensorFlow there is no sparse tensor to return.
"""

from __future__ import annotations

from embeddings.text.tokens import SPLIT_MODES, STANDARDIZE_MODES

OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf", "one_hot")
ALIASES = {"binary": "multi_hot", "tf-idf": "tf_idf"}  # Keras's deprecated names


def _is_count(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_mode(name: str, value: object, modes: tuple[str, ...]) -> None:
    if value is None or callable(value) or value in modes:
        return
    raise ValueError(f"{name} must be one of {modes}, None or a callable. "
                     f"Received: {name}={value!r}")


def check(max_tokens: int | None, standardize: object, split: object, ngrams: object,
          output_mode: str, output_sequence_length: int | None, pad_to_max_tokens: bool,
          idf_weights: object, sparse: bool, ragged: bool) -> None:
    """Refuse what Keras's ``TextVectorization`` refuses (and ``sparse=True``).

    Raises:
        ValueError: the first bad argument or combination, named.
    """
    if max_tokens is not None and not _is_count(max_tokens, 2):
        raise ValueError(f"max_tokens must be None or an integer above 1. "
                         f"Received: max_tokens={max_tokens!r}")
    _check_mode("standardize", standardize, STANDARDIZE_MODES)
    _check_mode("split", split, SPLIT_MODES)
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {OUTPUT_MODES}. "
                         f"Received: output_mode={output_mode!r}")
    widths = (ngrams,) if isinstance(ngrams, int) else ngrams
    if ngrams is not None and not (isinstance(widths, tuple) and widths and
                                   all(_is_count(w, 1) for w in widths)):
        raise ValueError("ngrams must be None, an integer of at least 1, or a non-empty "
                         f"tuple of them. Received: ngrams={ngrams!r}")
    if output_sequence_length is not None:
        if output_mode != "int":
            raise ValueError("`output_sequence_length` must not be set if `output_mode` is "
                             "not 'int'. Received: "
                             f"output_sequence_length={output_sequence_length!r}")
        if not _is_count(output_sequence_length, 1):
            raise ValueError("output_sequence_length must be None or an integer of at least "
                             f"1. Received: output_sequence_length={output_sequence_length!r}")
    if pad_to_max_tokens and max_tokens is None:
        raise ValueError("pad_to_max_tokens=True needs max_tokens. Received: max_tokens=None")
    if idf_weights is not None and output_mode != "tf_idf":
        raise ValueError("idf_weights may only be set in output_mode='tf_idf'. "
                         f"Received: output_mode={output_mode!r}")
    if sparse:
        raise ValueError("sparse=True needs TensorFlow's SparseTensor; this engine returns "
                         "dense NumPy arrays. Received: sparse=True")
    if ragged and output_mode != "int":
        raise ValueError("ragged=True works only with output_mode='int'. "
                         f"Received: output_mode={output_mode!r}")
    if output_mode == "one_hot" and split is not None:
        raise ValueError("output_mode='one_hot' gives one vector per string, so it needs "
                         f"split=None. Received: split={split!r}")
