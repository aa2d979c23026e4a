"""Tests of ``benchmarks/step.py``: end to end on the 40-review ``small_corpus`` with small
``--set`` overrides, its helpers on hand-worked cases, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import compare, step
from embeddings.backends.contract import Hooks
from embeddings.backends.native import fit
from embeddings.backends.vectorized import Vectorized
from embeddings.config import RunConfig
from embeddings.errors import InvalidInput
from embeddings.testing import assert_close, cli_error, write_imdb_tree
from tests.conftest import small_corpus

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"vocab_size": 50, "sequence_length": 20, "batch_size": 8}
STEPS, WARMUP = 3, 1
N_TRAIN = 32  # 40 reviews, 20% held out


@pytest.fixture(scope="module")
def imdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imdb_tree(tmp_path_factory.mktemp("imdb"), small_corpus())


@pytest.fixture(scope="module")
def measured(imdb: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[dict[str, Any], Path, str]:
    """One run of both presets: the report, its path and the printed table."""
    out = tmp_path_factory.mktemp("report") / "step.json"
    sets = [arg for k, v in SETTINGS.items() for arg in ("--set", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.step", "--data", str(imdb), *sets,
                           "--steps", str(STEPS), "--warmup", str(WARMUP), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), out, proc.stdout


def test_each_preset_reports_its_shape_with_the_settings(measured: tuple[dict[str, Any],
                                                                         Path, str]) -> None:
    report, _, _ = measured
    assert report["benchmark"] == "step"
    assert list(report["presets"]) == ["tutorial", "bigrams"]
    for name in ("tutorial", "bigrams"):
        preset = RunConfig.from_preset(name)
        ngrams, mask, lr = (preset.text.ngrams, preset.model.mask_padding,
                            preset.train.learning_rate)
        shape = report["presets"][name]["shape"]
        assert (shape["B"], shape["T"], shape["V"], shape["D"], shape["H"]) == (8, 20, 50, 16, 16)
        assert (shape["ngrams"], shape["mask_padding"], shape["learning_rate"]) == (ngrams, mask,
                                                                                    lr)
        assert shape["n_train"] == N_TRAIN and shape["steps_per_epoch"] == N_TRAIN // 8
        assert shape["batches_timed"] == 3  # 3 timed steps over the 4 full batches
        assert report["presets"][name]["iterations"] == WARMUP + 2 * STEPS  # phases, parts
        assert report["presets"][name]["config"]["train"]["device"] == "cpu"
    assert report["config"]["settings"] == SETTINGS


def test_phases_are_positive_and_step_is_their_sum(measured: tuple[dict[str, Any], Path,
                                                                   str]) -> None:
    report, _, _ = measured
    for result in report["presets"].values():
        phases = result["phases"]
        assert set(phases) == {"forward", "backward", "adam", "step"}
        for entry in phases.values():
            assert len(entry["times_s"]) == STEPS and min(entry["times_s"]) > 0
        for i, total in enumerate(phases["step"]["times_s"]):
            parts = sum(phases[p]["times_s"][i] for p in step.PHASES)
            assert total == pytest.approx(parts, rel=1e-12, abs=0.0)
        assert sum(phases[p]["time_share"] for p in step.PHASES) == pytest.approx(
            1.0, rel=1e-9, abs=0.0)
        for p in step.PHASES:
            assert phases[p]["share"] == phases[p]["median_s"] / phases["step"]["median_s"]
        for p in step.PHASES:
            assert phases[p]["minor_faults"] >= 0
        assert set(result["adam_parts"]) == {"table", "dense"}
        assert set(result["isolated"]) == {"table", "dense", "floor"}
        for part in (*result["adam_parts"].values(), *result["isolated"].values()):
            assert len(part["times_s"]) == STEPS and part["median_s"] > 0
            assert part["share_of_adam"] == part["median_s"] / phases["adam"]["median_s"]
            assert part["share"] == part["median_s"] / phases["step"]["median_s"]


def test_memory_is_the_table_times_six_plus_the_dense_layers(measured: tuple[dict[str, Any],
                                                                             Path, str]) -> None:
    report, _, _ = measured
    table = 50 * 16 * 4  # V * D * float32
    dense = (16 * 16 + 16 + 16 * 1 + 1) * 4 * 4  # kernels and biases; param, grad, m, v
    for result in report["presets"].values():
        mem = result["memory"]
        for key in ("table", "table_grad", "sink", "sink_grad", "adam_m", "adam_v"):
            assert mem[key] == table, key
        assert mem["table_total"] == 6 * table and mem["dense_total"] == dense
        assert mem["total"] == 6 * table + dense
        # ids are int32 (4 bytes), labels int64
        assert mem["ids"] == {"train_ids": N_TRAIN * 20 * 4, "train_labels": N_TRAIN * 8,
                              "val_ids": 8 * 20 * 4, "val_labels": 8 * 8}
        assert mem["peak_rss_bytes"] > mem["total"]


def test_sweep_bytes_and_speeds_follow_the_bytes_model(measured: tuple[dict[str, Any],
                                                                      Path, str]) -> None:
    report, _, _ = measured
    copy = report["copy_bandwidth"]
    assert copy["bytes"] == 2 * 256 * 2**20 and copy["gbps"] > 0
    for result in report["presets"].values():
        sweep = result["sweep"]
        assert sweep["bytes"] == 8 * 50 * 16 * 4
        assert sweep["backward_table_bytes_written"] == 2 * 50 * 16 * 4
        seconds = {"in_step": result["adam_parts"]["table"]["median_s"],
                   "isolated": result["isolated"]["table"]["median_s"],
                   "floor": result["isolated"]["floor"]["median_s"]}
        for which, median_s in seconds.items():
            assert sweep["gbps"][which] == pytest.approx(sweep["bytes"] / median_s / 1e9,
                                                         rel=1e-12, abs=0.0)
        for which in ("in_step", "isolated"):
            assert sweep[f"{which}_fraction_of_floor"] == pytest.approx(
                seconds["floor"] / seconds[which], rel=1e-12, abs=0.0)
            assert sweep[f"{which}_fraction_of_copy"] == pytest.approx(
                sweep["gbps"][which] / copy["gbps"], rel=1e-12, abs=0.0)
        assert result["kernels"] == {"ops": "cpu", "backward": "scatter"}  # 800 < 2**22


def test_summary_names_the_phase_with_the_largest_median(measured: tuple[dict[str, Any],
                                                                         Path, str]) -> None:
    report, _, table = measured
    for name, summary in report["summary"].items():
        phases = report["presets"][name]["phases"]
        medians = {p: phases[p]["median_s"] for p in step.PHASES}
        assert summary["dominant_phase"] == max(medians, key=medians.__getitem__)
        assert summary["adam_share"] == phases["adam"]["share"]
        assert summary["step_median_s"] == phases["step"]["median_s"]
        assert summary["table_sweep_share"] == (report["presets"][name]["adam_parts"]["table"]
                                                ["median_s"] / phases["step"]["median_s"])
        assert f"preset={name} device=cpu dtype=float32 B=8 T=20 V=50 D=16" in table
    assert "adam.table" in table and "isolated.floor" in table and "report: " in table


def test_compare_reads_two_step_reports(measured: tuple[dict[str, Any], Path, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    report, out, _ = measured
    result = compare.compare(report, report)
    keys = {m.key for m in result.matched}
    assert len(keys) == 2 * 9 and result.only_a == result.only_b == []
    assert ("bigrams", "B=8 T=20 V=50 D=16", "adam.table") in keys
    assert ("tutorial", "B=8 T=20 V=50 D=16", "isolated.floor") in keys
    assert all(m.ratio == 1.0 for m in result.matched)
    assert compare.main([str(out), str(out)]) == 0
    assert "tutorial B=8 T=20 V=50 D=16 backward" in capsys.readouterr().out


def test_timed_steps_train_exactly_as_fit_does() -> None:
    # Three epochs' worth of batches through time_steps, the last with the split optimizers,
    # must leave the weights fit leaves after three epochs on the same rows (the tutorial's
    # order: pass 0 each time).
    config = RunConfig.from_preset("bigrams", device="cpu", epochs=3, **SETTINGS)
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 50, (24, 20), generator=generator)
    ids[:, 15:] = 0  # padding, left out of the mean in this preset
    labels = torch.randint(0, 2, (24,), generator=generator)
    inputs = Vectorized(None, ids, labels, ids[:8], labels[:8])  # type: ignore[arg-type]
    theirs, _ = step.build(config, [])
    fit(theirs, inputs, config, Hooks())
    ours, optimizer = step.build(config, [])
    parts = step.train_batches(24, 8, 9)
    times, faults, losses = step.time_steps(ours, optimizer, ids, labels, parts[:6], warmup=2)
    assert len(times["step"]) == 4 and len(faults["adam"]) == 4 and len(losses) == 6
    times, _, _ = step.time_steps(ours, optimizer, ids, labels, parts[6:], 0, split=True)
    assert set(times) == {"forward", "backward", "table", "dense", "step"}
    assert optimizer.iterations == 9
    for (_, mine), (_, other) in zip(ours.state_dict().items(),
                                        theirs.state_dict().items(), strict=True):
        assert_close(mine, other, rtol=0.0, atol=0.0)


def test_train_batches_cycle_over_the_full_batches() -> None:
    as_pairs = [(s.start, s.stop) for s in step.train_batches(20, 8, 5)]
    assert as_pairs == [(0, 8), (8, 16), (0, 8), (8, 16), (0, 8)]  # rows 16..19 left out
    assert [(s.start, s.stop) for s in step.train_batches(5, 8, 2)] == [(0, 5), (0, 5)]


@pytest.mark.parametrize("text, expected", [
    ("vocab_size=50", ("vocab_size", 50)),
    ("learning-rate=0.01", ("learning_rate", 0.01)),
    ("mask_padding=false", ("mask_padding", False)),
    ("reshuffle=1", ("reshuffle", True)),
    ("init_vectors=none", ("init_vectors", None)),
    ("init_vectors=glove.txt", ("init_vectors", "glove.txt")),
])
def test_settings_take_their_field_type(text: str, expected: tuple[str, Any]) -> None:
    assert step.parse_setting(text) == expected


@pytest.mark.parametrize("text, message", [
    ("vocab_size", "--set takes FIELD=VALUE, e.g. --set vocab_size=50. Received: --set "
                   "vocab_size"),
    ("vocab_size=many", "--set vocab_size takes an integer. Received: --set vocab_size=many"),
    ("mask_padding=maybe", "--set mask_padding takes true or false"),
    ("batch=8", "--set names no setting. Received: --set batch=8; settings are "),
    ("device=cuda", "--set cannot change device: the benchmark runs on the CPU"),
])
def test_bad_settings_are_refused_with_the_rule(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        step.parse_setting(text)
    assert str(caught.value).startswith(message)


def test_setting_that_breaks_its_field_rule_names_the_flag() -> None:
    with pytest.raises(InvalidInput, match=r"^`--set vocab_size` must lie between 3 and .* "
                                           r"Received: --set vocab_size=2\."):
        step.preset_configs(["tutorial"], {"vocab_size": 2}, None)
    configs = step.preset_configs(["bigrams"], {"vocab_size": 3}, "x")
    assert configs["bigrams"].text.vocab_size == 3 and configs["bigrams"].data.data == "x"


@pytest.mark.parametrize("args, message", [
    (["--presets", "tutorial,nope"], "error: --presets takes names from tutorial, bigrams. "
                                     "Received: --presets=tutorial,nope"),
    (["--set", "vocab_size=abc"], "error: --set vocab_size takes an integer. Received: "
                                  "--set vocab_size=abc"),
    (["--set", "epochs=0"], "error: `--set epochs` must lie between 1 and"),
    (["--steps", "0"], "error: --steps must be at least 1. Received: --steps=0"),
])
def test_caller_mistakes_exit_2_with_one_line(imdb: Path, tmp_path: Path, args: list[str],
                                              message: str) -> None:
    out = tmp_path / "never.json"
    error = cli_error(["benchmarks.step", "--data", str(imdb), "--out", str(out), *args],
                      cwd=REPO, timeout=120)
    assert message in error.splitlines()[0]
    assert not out.exists()

