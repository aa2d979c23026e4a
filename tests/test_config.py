"""Flags generated from the config dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from embeddings.config import (
    PRESETS,
    FieldError,
    RunConfig,
    TextConfig,
    TrainConfig,
    build_parser,
    parse_args,
)


def test_defaults_are_the_tutorials() -> None:
    config = parse_args([], "prog", "desc")
    assert config == RunConfig()
    assert (config.text.vocab_size, config.text.sequence_length) == (10000, 100)
    assert (config.model.embedding_dim, config.model.hidden_units) == (16, 16)
    assert (config.train.batch_size, config.train.epochs, config.train.learning_rate) == (
        1024, 15, 1e-3)
    assert (config.data.validation_split, config.data.split_seed) == (0.2, 123)


def test_every_field_has_a_dashed_flag() -> None:
    flags = {a.option_strings[0] for a in build_parser("p", "d")._actions if a.option_strings}
    assert "--preset" in flags
    for section in dataclasses.fields(RunConfig):
        if not dataclasses.is_dataclass(section.default):
            continue  # the preset's name
        for f in dataclasses.fields(section.default):  # type: ignore[arg-type]
            assert "--" + f.name.replace("_", "-") in flags


def test_flags_override_and_round_trip_through_dict() -> None:
    config = parse_args(["--epochs", "3", "--learning-rate", "0.01", "--reshuffle",
                         "--data", "x.tar.gz", "--device", "cpu"], "p", "d")
    assert config.train.epochs == 3 and config.train.learning_rate == 0.01
    assert config.data.reshuffle and config.data.data == "x.tar.gz"
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("argv", [["--epoch", "3"], ["--epochs", "three"],
                                  ["--backend", "jax"]])
def test_bad_flags_exit_and_list_the_valid_ones(argv: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        parse_args(argv, "p", "d")
    assert err.value.code == 2
    assert "Valid flags:" in capsys.readouterr().err


def test_rule_violations_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--validation-split", "1.5"], "p", "d")
    assert "`--validation-split` must lie strictly between 0 and 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="epochs.*Received: epochs=0"):
        TrainConfig(epochs=0)


def test_unknown_config_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="fields"):
        RunConfig.from_dict({"train": {"epochz": 1}})


def test_a_preset_sets_its_values_and_is_recorded() -> None:
    config = parse_args(["--preset", "bigrams"], "p", "d")
    assert config.preset == "bigrams"
    values = {**dataclasses.asdict(config.data), **dataclasses.asdict(config.text),
              **dataclasses.asdict(config.model), **dataclasses.asdict(config.train)}
    assert {k: values[k] for k in PRESETS["bigrams"]} == PRESETS["bigrams"]
    assert config.text.ngrams == 2 and config.model.mask_padding
    assert config == RunConfig.from_preset("bigrams")
    assert RunConfig.from_dict(config.to_dict()) == config  # config.json keeps the name


def test_flags_override_a_presets_values_yes_no_ones_included() -> None:
    config = parse_args(["--preset", "bigrams", "--epochs", "1", "--no-mask-padding",
                         "--vocab-size", "5000"], "p", "d")
    assert (config.train.epochs, config.model.mask_padding, config.text.vocab_size) == (
        1, False, 5000)
    assert config.text.ngrams == PRESETS["bigrams"]["ngrams"]  # the rest stays the preset's
    assert parse_args(["--epochs", "2", "--preset", "bigrams"], "p", "d").train.epochs == 2


def test_the_tutorial_preset_is_the_defaults() -> None:
    assert parse_args(["--preset", "tutorial"], "p", "d") == RunConfig()
    assert RunConfig.from_dict({k: v for k, v in RunConfig().to_dict().items()
                                if k != "preset"}) == RunConfig()  # runs from before presets


def test_unknown_presets_and_settings_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        parse_args(["--preset", "trigrams"], "p", "d")
    assert err.value.code == 2
    assert "invalid choice: 'trigrams'" in capsys.readouterr().err
    with pytest.raises(FieldError, match="epochz.*is no setting"):
        RunConfig.from_preset("bigrams", epochz=1)
    with pytest.raises(FieldError, match="preset"):
        RunConfig(preset="trigrams")


def test_ngrams_become_keras_widths() -> None:
    assert TextConfig().ngram_widths is None
    assert TextConfig(ngrams=3).ngram_widths == (1, 2, 3)
    with pytest.raises(FieldError, match="ngrams"):
        TextConfig(ngrams=0)


def test_table_update_is_a_flag_with_two_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert TrainConfig().table_update == "dense"  # Keras's rule unless asked
    assert parse_args(["--table-update", "rows"], "p", "d").train.table_update == "rows"
    with pytest.raises(SystemExit) as err:
        parse_args(["--table-update", "lazy"], "p", "d")
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert "--table-update: invalid choice: 'lazy'" in err_text and "rows" in err_text
    with pytest.raises(ValueError, match="table_update.*must be one of dense, rows. "
                                         "Received: table_update='lazy'"):
        TrainConfig(table_update="lazy")


def test_precision_is_a_flag_with_two_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert TrainConfig().precision == "float32"  # exact unless asked
    assert parse_args(["--precision", "bf16"], "p", "d").train.precision == "bf16"
    with pytest.raises(SystemExit) as err:
        parse_args(["--precision", "fp16"], "p", "d")
    assert err.value.code == 2
    assert "--precision: invalid choice: 'fp16'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="precision.*must be one of float32, bf16. "
                                         "Received: precision='fp16'. float32 is exact"):
        TrainConfig(precision="fp16")
