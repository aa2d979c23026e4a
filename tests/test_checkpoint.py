"""A run's checkpoint: written atomically, read back whole, damage named; the state's form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings.runs import checkpoint
from embeddings.runs.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Checkpoint,
    CheckpointError,
    Checkpoints,
    flatten,
    unflatten,
)


def _checkpoint(step: int) -> Checkpoint:
    return Checkpoint(epoch=1, step=step, history={"loss": [0.5]},
                      tensors={"model.w": np.arange(6, dtype=np.float32).reshape(2, 3) * step,
                               "metrics.correct": np.array(7, dtype=np.int64)},
                      state={"global_step": 10 + step, "optimizer": {"lr": 0.001}})


def test_a_checkpoint_reads_back_as_saved_and_replaces_the_one_before(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, _checkpoint(2))
    checkpoint.save(tmp_path, _checkpoint(3))
    loaded = checkpoint.load(tmp_path)
    assert (loaded.epoch, loaded.step, loaded.history) == (1, 3, {"loss": [0.5]})
    assert loaded.state == {"global_step": 13, "optimizer": {"lr": 0.001}}
    np.testing.assert_array_equal(loaded.tensors["model.w"], np.arange(6).reshape(2, 3) * 3)
    assert loaded.tensors["metrics.correct"].dtype == np.int64
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()) == [
        STATE_FILE, "state-13.safetensors"]  # the older tensors file is gone


def test_a_save_killed_before_its_record_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    """The record is the commit: tensors written without it change nothing, and the
    next save removes them."""
    checkpoint.save(tmp_path, _checkpoint(2))
    orphan = tmp_path / CHECKPOINT_DIR / "state-99.safetensors"
    orphan.write_bytes(b"half a file")
    assert checkpoint.load(tmp_path).step == 2
    checkpoint.save(tmp_path, _checkpoint(4))
    assert not orphan.exists() and checkpoint.load(tmp_path).step == 4


def test_damaged_or_missing_checkpoints_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        checkpoint.load(tmp_path)
    checkpoint.save(tmp_path, _checkpoint(2))
    tensors = tmp_path / CHECKPOINT_DIR / "state-12.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 1
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="state-12.safetensors: its SHA-256 differs"):
        checkpoint.load(tmp_path)
    record = tmp_path / CHECKPOINT_DIR / STATE_FILE
    raw = json.loads(record.read_text())
    raw["tensors"]["file"] = "../../elsewhere.safetensors"
    record.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="outside its folder"):
        checkpoint.load(tmp_path)
    record.write_text("{")
    with pytest.raises(CheckpointError, match="not a checkpoint record"):
        checkpoint.load(tmp_path)


def test_flatten_moves_every_tensor_out_and_unflatten_puts_it_back() -> None:
    state = {"state": {0: {"m": torch.ones(2), "step": 3}}, "groups": [{"lr": 0.1}],
             "rng": ("MT19937", np.arange(3, dtype=np.uint32), 5)}
    tensors: dict[str, np.ndarray] = {}
    flat = flatten("optimizer", state, tensors)
    assert sorted(tensors) == ["optimizer.rng.1", "optimizer.state.0.m"]
    assert json.loads(json.dumps(flat)) == flat  # the rest is JSON
    back = unflatten(flat, tensors, torch.from_numpy)
    assert torch.equal(back["state"]["0"]["m"], torch.ones(2)) and back["state"]["0"]["step"] == 3
    assert back["rng"][0] == "MT19937" and back["rng"][1].tolist() == [0, 1, 2]
    del tensors["optimizer.state.0.m"]
    with pytest.raises(CheckpointError, match="'optimizer.state.0.m'"):
        unflatten(flat, tensors)


def test_the_first_save_writes_the_run_marks_it_incomplete_and_publishes(tmp_path: Path) -> None:
    events: list[str] = []
    saves = Checkpoints(lambda: tmp_path, every=3,
                        first_save=lambda folder: events.append(f"start {folder.name}"),
                        published=lambda: events.append("published"))
    assert [saves.due(k) for k in range(1, 7)] == [False, False, True, False, False, True]
    saves.save(_checkpoint(1))
    saves.save(_checkpoint(2))
    assert events == [f"start {tmp_path.name}", "published"]  # once
    assert checkpoint.is_incomplete(tmp_path)
    assert checkpoint.resume_command(tmp_path) in (tmp_path / "INCOMPLETE").read_text()
    checkpoint.mark_complete(tmp_path)
    assert not checkpoint.is_incomplete(tmp_path)
    assert not Checkpoints(lambda: tmp_path).due(3)  # epoch ends only


def test_a_resumed_run_must_adapt_the_vocabulary_it_was_trained_with(tmp_path: Path) -> None:
    saves = Checkpoints(lambda: tmp_path, vocabulary=["", "[UNK]", "good"])
    saves.begin(["", "[UNK]", "good"])
    with pytest.raises(CheckpointError, match="another vocabulary"):
        saves.begin(["", "[UNK]", "bad"])
