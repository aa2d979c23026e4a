"""A ``.keras`` archive's ``config.json``, read as data: which layers of the tutorial
model hold the weights, whether its embedding masks padding, and what its
``TextVectorization`` says.

Every field that is used is type-checked and named by its path in an error
(``config.layers[4].config.name``); nothing is taken from the file unchecked.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from typing import Any

from embeddings import weights
from embeddings.config import TextConfig
from embeddings.errors import InvalidInput
from embeddings.text import STANDARDIZE_MODES

# Keras's built-in standardizations ("tutorial" is this package's name for the custom one).
KERAS_STANDARDIZE = tuple(m for m in STANDARDIZE_MODES if m != "tutorial")
RESAVE = "save the model again with Keras 3's model.save(), or use a file you trust"
RESAVE_SENTENCE = RESAVE[0].upper() + RESAVE[1:] + "."
SHORT = reprlib.Repr()  # values quoted in messages: one level deep, a line at most
SHORT.maxlevel, SHORT.maxdict, SHORT.maxlist, SHORT.maxstring = 1, 3, 6, 60


@dataclass(frozen=True)
class Architecture:
    """What a ``.keras`` archive's ``config.json`` says of the tutorial model."""

    roles: dict[str, str]  # weights.LAYERS -> the model's layer names
    vectorizer: str | None  # the TextVectorization layer's name, if any
    sequence_length: int | None
    standardize: str | None
    mask_zero: bool  # Embedding(mask_zero=True): padding id 0 left out of the mean
    ngrams: int | None  # the N of the vectorizer's ngrams=(1, ..., N); None without one


def _checked(name: str, value: int, label: str) -> int:
    """``value``, checked by :class:`TextConfig`'s rule for its field ``name``.

    Raises:
        InvalidInput: ``value`` breaks the rule; the message starts with ``label``.
    """
    try:
        return int(getattr(TextConfig(**{name: value}), name))
    except ValueError as err:
        raise InvalidInput(f"{label}: {err}") from err


def checked_sequence_length(value: int, label: str) -> int:
    """``value``, checked as ``--sequence-length`` (see :func:`_checked`)."""
    return _checked("sequence_length", value, label)


def checked_ngrams(value: int, label: str) -> int:
    """``value``, checked as ``--ngrams`` (see :func:`_checked`)."""
    return _checked("ngrams", value, label)


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               bool: "true or false", type(None): "null"}


def _typed(value: Any, kinds: tuple[type, ...], field: str, where: str) -> Any:
    """``value`` (the config's ``field``), after checking it is one of the JSON ``kinds``.

    Raises:
        InvalidInput: it is not; the message names ``where`` and ``field``.
    """
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(_JSON_TYPES[k] for k in kinds)
        raise InvalidInput(
            f"{where} is not the tutorial model's config: `{field}` must be {expected}. "
            f"Received: {field}={SHORT.repr(value)}; {RESAVE}."
        )
    return value


def _field(obj: dict[str, Any], key: str, kinds: tuple[type, ...], field: str,
           where: str) -> Any:
    """``obj[key]`` (absent reads as ``None``), checked by :func:`_typed`."""
    return _typed(obj.get(key), kinds, f"{field}.{key}" if field else key, where)


def _standardize(conf: dict[str, Any], field: str, where: str) -> str | None:
    """A TextVectorization's standardization: Keras's built-in name, ``None``, or
    ``"tutorial"`` for a custom function (taken to be the tutorial's)."""
    if "standardize" not in conf:
        return "lower_and_strip_punctuation"  # Keras's default
    spec = _field(conf, "standardize", (str, dict, type(None)), field, where)
    if isinstance(spec, dict):
        return "tutorial"  # a custom function
    if spec is not None and spec not in KERAS_STANDARDIZE:
        raise InvalidInput(
            f"{where}: `{field}.standardize` must be one of Keras's built-ins "
            f"{', '.join(KERAS_STANDARDIZE)}, null or a custom function. Received: "
            f"standardize={SHORT.repr(spec)}; save the model with one of those."
        )
    return spec


def _ngrams(conf: dict[str, Any], field: str, where: str) -> int:
    """A TextVectorization's ``ngrams`` as the N of ``(1, ..., N)``, the only n-grams a run
    trains (``--ngrams N``): ``null`` is 1, an integer N is N, a list ``[1, ..., N]`` is N.

    Raises:
        InvalidInput: any other value (``[2]``, ``[1, 3]``), or an N outside
            :class:`TextConfig`'s bounds.
    """
    spec = _field(conf, "ngrams", (int, list, type(None)), field, where)
    if spec is None:
        return 1
    if isinstance(spec, list):
        # type() is int: JSON's 1.0 and true would compare equal to 1
        if not spec or any(type(w) is not int for w in spec) or \
                spec != list(range(1, len(spec) + 1)):
            raise InvalidInput(
                f"{where}: `{field}.ngrams` must be null, an integer N or the list [1, ..., N]: "
                "only ngrams=(1, ..., N) is supported (single words up to N-grams, as "
                f"--ngrams N trains). Received: ngrams={SHORT.repr(spec)}; save the model with "
                "ngrams=N."
            )
        spec = len(spec)
    return checked_ngrams(spec, f"{where}: `{field}.ngrams`")


def _mask_zero(conf: dict[str, Any], field: str, where: str) -> bool:
    """An Embedding's ``mask_zero`` (absent: ``False``, Keras's default)."""
    if "mask_zero" not in conf:
        return False
    return bool(_typed(conf["mask_zero"], (bool,), f"{field}.mask_zero", where))


def _input_length(conf: dict[str, Any], field: str, where: str) -> int | None:
    """The sequence length of an integer-input model, from its ``InputLayer``."""
    shape = _field(conf, "batch_shape", (list, type(None)), field, where) or []
    if len(shape) == 2 and shape[1] is not None:
        length = _typed(shape[1], (int,), f"{field}.batch_shape[1]", where)
        return checked_sequence_length(length, f"{where}: `{field}.batch_shape[1]`")
    return None


def parse_config(raw: bytes, where: str) -> Architecture:
    """Parse a ``.keras`` archive's ``config.json``: which layers hold the weights, the
    embedding's ``mask_zero``, and the vectorizer's settings.

    Args:
        raw (bytes): the member's content.
        where (str): how to name it in an error.

    Raises:
        InvalidInput: not JSON, not the tutorial model, a field of the wrong type, or
            ``ngrams`` other than ``(1, ..., N)``.
    """
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise InvalidInput(f"{where} is not readable JSON: {err}. "
                           f"Received: a damaged archive; {RESAVE}.") from err
    top = _typed(config, (dict,), "config.json", where)
    layers = _field(_field(top, "config", (dict,), "", where), "layers", (list,), "config",
                    where)
    by_class: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for i, layer in enumerate(layers):
        field = f"config.layers[{i}]"
        layer = _typed(layer, (dict,), field, where)
        class_name = _field(layer, "class_name", (str,), field, where)
        conf = _field(layer, "config", (dict,), field, where)
        _field(conf, "name", (str,), f"{field}.config", where)
        by_class.setdefault(class_name, []).append((f"{field}.config", conf))
    embedding = by_class.get("Embedding", []) + by_class.get("OccurrenceEmbedding", [])
    dense, vectorizers = by_class.get("Dense", []), by_class.get("TextVectorization", [])
    if len(embedding) != 1 or len(dense) != 2 or len(vectorizers) > 1:
        raise InvalidInput(
            f"{where} is not the tutorial model (one Embedding, then two Dense layers, at "
            f"most one TextVectorization). Received: layers={SHORT.repr(list(by_class))}; "
            "convert only that model."
        )
    roles = dict(zip(weights.LAYERS, [c["name"] for _, c in embedding + dense], strict=True))
    mask_zero = _mask_zero(embedding[0][1], embedding[0][0], where)
    if not vectorizers:
        inputs = by_class.get("InputLayer", [])
        length = _input_length(inputs[0][1], inputs[0][0], where) if inputs else None
        return Architecture(roles, None, length, "tutorial", mask_zero, None)
    field, conf = vectorizers[0]
    length = _field(conf, "output_sequence_length", (int, type(None)), field, where)
    if length is not None:
        length = checked_sequence_length(length, f"{where}: `{field}.output_sequence_length`")
    return Architecture(roles, conf["name"], length, _standardize(conf, field, where),
                        mask_zero, _ngrams(conf, field, where))
