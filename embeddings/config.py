"""Run configuration: one frozen dataclass per stage, and the flag parser made from them.

The defaults are the tutorial's hyper-parameters.  Command-line flags are the
field names with dashes (``vocab_size`` -> ``--vocab-size``), generated from the
dataclasses so the two cannot drift apart.  This module imports no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from embeddings.errors import ArgumentParser, InvalidInput

BACKENDS = ("torch", "keras", "tf")
DEVICES = ("auto", "cpu", "cuda")
TABLE_UPDATES = ("dense", "rows")
PRECISIONS = ("float32", "bf16")
CHECKPOINT_WHEN = ("auto", "epoch", "never")


# Bounds beyond the tutorial's rules: NumPy's and Keras's seeds are 32-bit, and longer
# sequences or larger batches than these are mistakes that would only exhaust memory.
MAX_SEED = 2**32 - 1
MAX_SEQUENCE_LENGTH = 1_000_000
MAX_SIZE = 2**31 - 1  # vocabulary, widths and batch: int32, as Keras's shapes
MAX_NGRAMS = 16  # longer n-grams would be nearly all unique: a mistake, not a model


class FieldError(InvalidInput):
    """A setting breaks its rule; knows its field, so the command line can name the flag.

    Args:
        name (str): the field, e.g. ``"seed"``.
        rule (str): what the value must be.
        value (object): the value received.
        fix (str): how to fix it. Default: ``""``.
    """

    def __init__(self, name: str, rule: str, value: object, fix: str = "") -> None:
        self.name, self.rule, self.value, self.fix = name, rule, value, fix
        super().__init__(self.message(name))

    def message(self, label: str) -> str:
        """The message with the setting called ``label`` (a field or a flag)."""
        text = f"`{label}` {self.rule}. Received: {label}={self.value!r}"
        return f"{text}. {self.fix}" if self.fix else text

    @property
    def flag(self) -> str:
        """The command-line flag of the field."""
        return "--" + self.name.split(".")[-1].replace("_", "-")


def _check(ok: bool, name: str, rule: str, value: object, fix: str = "") -> None:
    if not ok:
        raise FieldError(name, rule, value, fix)


def _check_int(value: int, name: str, low: int, high: int, fix: str = "") -> None:
    _check(isinstance(value, int) and not isinstance(value, bool), name, "must be an integer",
           value, fix)
    _check(low <= value <= high, name, f"must lie between {low:,} and {high:,}", value, fix)


@dataclass(frozen=True)
class DataConfig:
    """Where the reviews come from and how they are split and ordered."""

    data: str | None = field(
        default=None,
        metadata={
            "help": "IMDb source: an aclImdb directory, an aclImdb tarball, 'hub' (Hugging Face "
            "stanfordnlp/imdb) or an http(s) URL of the tarball, optionally pinned as "
            "URL#sha256=<hex> (EMBEDDINGS_DOWNLOAD_TIMEOUT: seconds without a byte, default "
            "60); or your own corpus: a .parquet, .arrow, .jsonl/.json or .csv file, a folder "
            "of them, or a hub dataset hub:<owner>/<name>, with --text-column and "
            "--label-column. Default: $EMBEDDINGS_DATA, else the verified local cache, then "
            "the hub, then the Stanford URL."
        },
    )
    validation_split: float = field(
        default=0.2, metadata={"help": "fraction of the reviews held out for validation"}
    )
    split_seed: int = field(
        default=123, metadata={"help": "seed of the Keras split and of the tf.data shuffle"}
    )
    reshuffle: bool = field(
        default=False,
        metadata={
            "help": "give the training rows a fresh order every epoch instead of the tutorial's "
            "one cached order"
        },
    )
    text_column: str = field(
        default="text", metadata={"help": "a corpus file's column of texts (see --data)"}
    )
    label_column: str = field(
        default="label",
        metadata={"help": "a corpus file's column of labels, 0/1 or false/true (see --data)"},
    )

    def __post_init__(self) -> None:
        _check(isinstance(self.validation_split, float | int)
               and 0.0 < self.validation_split < 1.0, "validation_split",
               "must lie strictly between 0 and 1", self.validation_split,
               "The tutorial uses 0.2.")
        _check_int(self.split_seed, "split_seed", 0, MAX_SEED, "The tutorial uses 123.")
        for name in ("text_column", "label_column"):
            value = getattr(self, name)
            _check(isinstance(value, str) and value != "", name, "must be a column name",
                   value, "Name a column of the corpus file, e.g. text or label.")
        _check(self.text_column != self.label_column, "label_column",
               "must differ from text_column", self.label_column,
               "Texts and labels are two columns.")


@dataclass(frozen=True)
class TextConfig:
    """The vectorizer: vocabulary size and sequence length."""

    vocab_size: int = field(
        default=10_000, metadata={"help": "vocabulary size, '' and '[UNK]' included"}
    )
    sequence_length: int = field(
        default=100, metadata={"help": "tokens kept per review (padded or truncated)"}
    )
    ngrams: int = field(
        default=1,
        metadata={
            "help": "n-grams up to this length become tokens too: TextVectorization's "
            "ngrams=N, e.g. 2 adds bigrams (a review's unigrams come first, then its bigrams)"
        },
    )

    def __post_init__(self) -> None:
        _check_int(self.vocab_size, "vocab_size", 3, MAX_SIZE,
                   "It counts padding, [UNK] and at least one token; the tutorial uses 10000.")
        _check_int(self.sequence_length, "sequence_length", 1, MAX_SEQUENCE_LENGTH,
                   "The tutorial uses 100.")
        _check_int(self.ngrams, "ngrams", 1, MAX_NGRAMS,
                   "1 is single words (the tutorial); 2 adds bigrams.")

    @property
    def ngram_widths(self) -> tuple[int, ...] | None:
        """TextVectorization's ``ngrams`` argument: ``None`` for single words, else
        ``(1, ..., ngrams)``."""
        return None if self.ngrams == 1 else tuple(range(1, self.ngrams + 1))


@dataclass(frozen=True)
class ModelConfig:
    """The classifier's widths (its vocabulary size comes from :class:`TextConfig`)."""

    embedding_dim: int = field(default=16, metadata={"help": "embedding width D"})
    hidden_units: int = field(default=16, metadata={"help": "width H of the hidden Dense layer"})
    init_vectors: str | None = field(
        default=None,
        metadata={
            "help": "start the embedding from a word-vector text file (GloVe, fastText or "
            "word2vec .vec, a run's vectors.vec; optional 'N D' header, then 'token v1 ... vD' "
            "per line): the vocabulary's rows it holds take its vectors, the others keep their "
            "initialiser; D must equal --embedding-dim"
        },
    )

    mask_padding: bool = field(
        default=False,
        metadata={
            "help": "leave padding out of each review's mean: Embedding(mask_zero=True) + "
            "GlobalAveragePooling1D with the mask (the tutorial counts padding)"
        },
    )

    def __post_init__(self) -> None:
        _check_int(self.embedding_dim, "embedding_dim", 1, MAX_SIZE, "The tutorial uses 16.")
        _check_int(self.hidden_units, "hidden_units", 1, MAX_SIZE, "The tutorial uses 16.")
        _check(self.init_vectors is None or (isinstance(self.init_vectors, str)
                                             and self.init_vectors != ""),
               "init_vectors", "must be the path of a word-vector file", self.init_vectors,
               "Leave the flag out to keep the tutorial's initialiser.")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop and where its outputs go."""

    backend: str = field(
        default="torch", metadata={"help": "which implementation trains", "choices": BACKENDS}
    )
    device: str = field(
        default="auto", metadata={"help": "auto picks cuda when available", "choices": DEVICES}
    )
    batch_size: int = field(default=1024, metadata={"help": "reviews per step"})
    epochs: int = field(default=15, metadata={"help": "passes over the training rows"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam's learning rate"})
    seed: int = field(
        default=0,
        metadata={
            "help": "weight-initialisation seed; seed s gives TensorFlow's weights for the "
            "tutorial with keras.utils.set_random_seed(s) before the model is built"
        },
    )
    deterministic: bool = field(
        default=False,
        metadata={
            "help": "reproducible runs on CUDA: the embedding backward sums in a fixed order "
            "(slower than atomic adds; TensorFlow: op determinism); the CPU always is"
        },
    )
    table_update: str = field(
        default="dense",
        metadata={
            "help": "Adam on the embedding table: 'dense' is Keras's rule, every row every step "
            "(exact); 'rows' updates only the rows a batch touches, like SparseAdam or LazyAdam "
            "(faster for large tables; --backend torch only)",
            "choices": TABLE_UPDATES,
        },
    )
    precision: str = field(
        default="float32",
        metadata={
            "help": "the embedding lookup's precision: 'bf16' gathers from a bfloat16 copy of "
            "the table (float32 sums, weights and Adam state; meant for CUDA, the CPU runs it "
            "on the slower pure-torch path; --backend torch only; docs/precision.md)",
            "choices": PRECISIONS,
        },
    )
    out: str | None = field(
        default=None, metadata={"help": "run directory to create. Default: runs/<timestamp>"}
    )
    checkpoint_every: str = field(
        default="auto",
        metadata={
            "help": "when to save the checkpoint a stopped run continues from (--resume DIR): "
            "'epoch' (each epoch's end), N (every N steps and each epoch's end) or 'never'; "
            "'auto' is 'epoch' for --backend torch and 'never' for keras and tf, which "
            "cannot resume"
        },
    )

    def __post_init__(self) -> None:
        _check(self.backend in BACKENDS, "backend", f"must be one of {', '.join(BACKENDS)}",
               self.backend)
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}",
               self.device)
        _check(self.table_update in TABLE_UPDATES, "table_update",
               f"must be one of {', '.join(TABLE_UPDATES)}", self.table_update,
               "dense is Keras's Adam (the default); rows updates the touched rows only.")
        _check(self.precision in PRECISIONS, "precision",
               f"must be one of {', '.join(PRECISIONS)}", self.precision,
               "float32 is exact (the default); bf16 looks the embeddings up in bfloat16.")
        _check_int(self.batch_size, "batch_size", 1, MAX_SIZE, "The tutorial uses 1024.")
        _check_int(self.epochs, "epochs", 1, MAX_SIZE, "The tutorial uses 15.")
        _check(isinstance(self.learning_rate, float | int) and math.isfinite(self.learning_rate)
               and self.learning_rate > 0, "learning_rate", "must be a positive finite number",
               self.learning_rate, "The tutorial uses 0.001.")
        _check_int(self.seed, "seed", 0, MAX_SEED, "Any 32-bit seed works; the default is 0.")
        _check(self.checkpoint_every in CHECKPOINT_WHEN or (
            isinstance(self.checkpoint_every, str) and self.checkpoint_every.isdecimal()
            and 0 < int(self.checkpoint_every) <= MAX_SIZE), "checkpoint_every",
            f"must be {', '.join(CHECKPOINT_WHEN)} or a positive number of steps",
            self.checkpoint_every, "The default, auto, saves one at each epoch's end.")

    @property
    def checkpoint_steps(self) -> int | None:
        """Save every this many steps (besides epoch ends); ``None``: at epoch ends only."""
        return int(self.checkpoint_every) if self.checkpoint_every.isdecimal() else None


# Named sets of flag values (field -> value); any flag given on the command line overrides
# its preset's value.  ``tutorial`` is the defaults.  ``bigrams`` is the fastText-class
# model: unigrams and bigrams, a large vocabulary, padding left out of the mean; tuned on
# the validation split only (docs/presets.md).
PRESETS: dict[str, dict[str, Any]] = {
    "tutorial": {},
    "bigrams": {"ngrams": 2, "vocab_size": 200_000, "sequence_length": 1000,
                "mask_padding": True, "batch_size": 128, "learning_rate": 2e-3, "epochs": 4},
}
PRESET_HELP = {
    "tutorial": "the tutorial's model and schedule (the defaults)",
    "bigrams": "unigrams and bigrams, a large vocabulary, padding left out of the mean",
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs, one section per stage, and the preset its
    values started from (a record: the sections hold every value, flags included)."""

    data: DataConfig = DataConfig()
    text: TextConfig = TextConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    preset: str = "tutorial"

    def __post_init__(self) -> None:
        _check(self.preset in PRESETS, "preset", f"must be one of {', '.join(PRESETS)}",
               self.preset)

    @classmethod
    def from_preset(cls, name: str, **settings: Any) -> RunConfig:
        """The settings of preset ``name`` with ``settings`` (field -> value, e.g.
        ``epochs=1``) in place of its values.

        Raises:
            FieldError: an unknown preset or field, or a value that breaks its rule.
        """
        _check(name in PRESETS, "preset", f"must be one of {', '.join(PRESETS)}", name)
        values = {**PRESETS[name], **settings}
        sections: dict[str, dict[str, Any]] = {section: {} for section, _ in _sections()}
        owner = _field_sections()
        for key, value in values.items():
            _check(key in owner, key, "is no setting", value,
                   f"Settings are the fields of {', '.join(sorted(owner))}.")
            sections[owner[key]][key] = value
        return cls.from_dict({**sections, "preset": name})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready ``{section: {field: value}}`` mapping, plus ``preset``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict` (``preset`` may be absent: runs written before presets
        existed); unknown sections or fields raise ``ValueError``."""
        sections = {name: tp for name, tp in _sections()}
        unknown = set(raw) - set(sections) - {"preset"}
        _check(not unknown, "config", f"has only the sections {sorted(sections)}", sorted(unknown))
        built: dict[str, Any] = {}
        for name, values in raw.items():
            if name == "preset":
                built[name] = values
                continue
            section_cls = sections[name]
            names = {f.name for f in dataclasses.fields(section_cls)}
            extra = set(values) - names
            _check(not extra, f"config.{name}", f"has only the fields {sorted(names)}",
                   sorted(extra))
            built[name] = section_cls(**values)
        return cls(**built)


def _sections() -> list[tuple[str, type]]:
    """``(name, dataclass)`` of every section of :class:`RunConfig`."""
    hints = typing.get_type_hints(RunConfig)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(RunConfig)
            if dataclasses.is_dataclass(hints[f.name])]


def _field_sections() -> dict[str, str]:
    """The section of every setting, by field name (names are unique across sections)."""
    return {f.name: section for section, section_cls in _sections()
            for f in dataclasses.fields(section_cls)}


def _flag_type(tp: Any) -> Any:
    """The scalar type behind ``X`` or ``X | None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def build_parser(prog: str, description: str,
                 epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser with ``--preset`` and one flag per field of every section of
    :class:`RunConfig` (``--x``/``--no-x`` for a yes-no setting, so a flag can undo its
    preset's value)."""
    parser = ArgumentParser(prog=prog, description=description, epilog=epilog,
                            allow_abbrev=False)
    parser.add_argument(
        "--preset", default="tutorial", choices=tuple(PRESETS),
        help="a named set of flag values; any flag given overrides its value: "
        + "; ".join(f"{name}: {PRESET_HELP[name]} ({_preset_flags(name)})"
                    for name in PRESETS) + " (default: tutorial)")
    for section, section_cls in _sections():
        group = parser.add_argument_group(section)
        hints = typing.get_type_hints(section_cls)
        for f in dataclasses.fields(section_cls):
            flag = "--" + f.name.replace("_", "-")
            help_ = f"{f.metadata.get('help', '')} (default: {f.default})"
            kind = _flag_type(hints[f.name])
            if kind is bool:
                group.add_argument(flag, dest=f"{section}.{f.name}", default=f.default,
                                   action=argparse.BooleanOptionalAction, help=help_)
            else:
                group.add_argument(flag, dest=f"{section}.{f.name}", type=kind,
                                   default=f.default, choices=f.metadata.get("choices"),
                                   metavar=f.name.upper(), help=help_)
    return parser


def _preset_flags(name: str) -> str:
    """A preset's values as the flags that would set them, e.g. ``--ngrams 2 --mask-padding``."""
    flags = []
    for key, value in PRESETS[name].items():
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is True else f"--no-{flag[2:]}" if value is False
                     else f"{flag} {value}")
    return " ".join(flags) or "no flag changed"


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Build a :class:`RunConfig` from a namespace made by :func:`build_parser`."""
    raw: dict[str, Any] = {"preset": getattr(args, "preset", "tutorial")}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            raw.setdefault(section, {})[name] = value
    return RunConfig.from_dict(raw)


def parse_args(argv: Sequence[str] | None, prog: str, description: str,
               epilog: str | None = None) -> RunConfig:
    """Parse command-line flags into a validated :class:`RunConfig`.

    ``--preset`` is read first and its values become the flags' defaults, so that any
    flag given overrides them.  A value that breaks a section's rule (say ``--epochs 0``)
    exits with the parser's usage error and the rule, like an unknown flag does.
    """
    parser = build_parser(prog, description, epilog)
    chosen = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    chosen.add_argument("--preset", default="tutorial")
    name = chosen.parse_known_args(argv)[0].preset
    if name in PRESETS:  # an unknown name is refused by the full parser below
        owner = _field_sections()
        parser.set_defaults(**{f"{owner[k]}.{k}": v for k, v in PRESETS[name].items()})
    args = parser.parse_args(argv)
    try:
        return config_from_args(args)
    except FieldError as err:  # the flag's value breaks its rule: name the flag and the fix
        parser.exit(2, f"{parser.prog}: error: {err.message(err.flag)}\n")
