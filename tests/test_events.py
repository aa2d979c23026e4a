"""TensorBoard event files written without TensorBoard: records, scalars, the run's logs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from embeddings.runs.events import LOGS_DIR, ScalarLog, masked_crc32c, scalar_record


def test_masked_crc32c_matches_tensorboards() -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (
        masked_crc32c as tensorboard_masked_crc32c,
    )

    for data in (b"", b"123456789", bytes(range(256)) * 3):
        assert masked_crc32c(data) == tensorboard_masked_crc32c(data)
    crc = 0xE3069283  # the CRC-32C check value of b"123456789"
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize(("tag", "value", "step"), [
    ("epoch_loss", 0.6931471824645996, 0), ("epoch_accuracy", 0.5, 127),
    ("epoch_accuracy", 0.0, 3),
    ("epoch_loss", -1e-30, 300), ("é_tag", float("inf"), 2**40)])
def test_a_scalar_record_is_the_one_tensorboards_writer_makes(tag: str, value: float,
                                                             step: int) -> None:
    """Byte for byte TensorBoard's own encoding, steps above one varint byte included."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    event = Event(wall_time=1764633600.25, step=step,
                  summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]))
    RecordWriter(buffer).write(event.SerializeToString())
    assert scalar_record(tag, value, step, 1764633600.25) == buffer.getvalue()


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.iterdir()):
        for record in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(record)
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_scalar_log_follows_a_renamed_folder_and_tensorboard_reads_every_epoch(
        tmp_path: Path) -> None:
    where = [tmp_path / "staging"]
    log = ScalarLog(lambda: where[0])
    log.add_epoch(0, {"loss": 0.75, "accuracy": 0.5, "val_loss": 0.625, "val_accuracy": 0.25})
    (tmp_path / "staging").rename(tmp_path / "run")  # a checkpointing run's first save
    where[0] = tmp_path / "run"
    log.add_epoch(1, {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.375, "val_accuracy": 1.0})
    assert _scalars(tmp_path / "run" / LOGS_DIR / "train") == {
        "epoch_loss": [(0, 0.75), (1, 0.5)], "epoch_accuracy": [(0, 0.5), (1, 0.75)]}
    assert _scalars(tmp_path / "run" / LOGS_DIR / "validation") == {
        "epoch_loss": [(0, 0.625), (1, 0.375)], "epoch_accuracy": [(0, 0.25), (1, 1.0)]}
    assert not (tmp_path / "staging").exists()
    assert [p.name for p in (tmp_path / "run" / LOGS_DIR / "train").iterdir()] == [log.name]
