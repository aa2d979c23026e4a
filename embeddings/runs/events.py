"""TensorBoard event files, written without TensorBoard: a run's scalars and the Projector's marker.

An event file is a sequence of TFRecords, each holding one ``Event`` proto.  A TFRecord
is ``uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)``,
little-endian.  The protos used here, encoded by hand (field number, wire type):

* ``Event``: ``wall_time`` (1, double), ``step`` (2, varint), ``file_version`` (3,
  string) or ``summary`` (5, message);
* ``Summary``: ``value`` (1, message, repeated);
* ``Summary.Value``: ``tag`` (1, string), ``simple_value`` (2, float): what
  ``SummaryWriter.add_scalar`` writes and TensorBoard's Scalars tab reads.

:class:`ScalarLog` keeps a run's per-epoch scalars (``logs/train``, ``logs/validation``,
tags ``epoch_loss`` and ``epoch_accuracy``, as Keras's TensorBoard callback names them)
and rewrites each of its files whole, atomically, after every epoch: the files are
never half-written, and they follow a run directory that is renamed while training (a
checkpointing run's staging folder).  Each process writes its own file, so a resumed
run adds one beside the first.  Nothing imports TensorBoard.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from embeddings.files import atomic_write_bytes

LOGS_DIR = "logs"
SPLITS = {"train": "", "validation": "val_"}  # logs/<folder>: prefix of its history keys
_FILE_VERSION = b"brain.Event:2"


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """The CRC-32C of ``data``, masked as TFRecord stores it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _record(event: bytes) -> bytes:
    header = struct.pack("<Q", len(event))
    return (header + struct.pack("<I", masked_crc32c(header))
            + event + struct.pack("<I", masked_crc32c(event)))


def event_file_bytes(wall_time: float) -> bytes:
    """An event file holding only the version record, stamped ``wall_time`` (seconds)."""
    return _record(b"\x09" + struct.pack("<d", wall_time) + _field(3, _FILE_VERSION))


def scalar_record(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """One TFRecord: the event of scalar ``tag`` = ``value`` (float32) at ``step``.

    As proto3 does, a step of 0 (the default) is left out; the value is in a ``oneof``,
    so it is always written.
    """
    summary_value = _field(1, tag.encode("utf-8")) + b"\x15" + struct.pack("<f", value)
    step_field = b"\x10" + _varint(step) if step else b""
    return _record(b"\x09" + struct.pack("<d", wall_time) + step_field
                   + _field(5, _field(1, summary_value)))


class ScalarLog:
    """A run's per-epoch scalars for TensorBoard (see the module docstring).

    Args:
        folder (Callable[[], Path]): where the run is being written now.
    """

    def __init__(self, folder: Callable[[], Path]) -> None:
        self.folder = folder
        self.name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                     f"{os.getpid()}")
        start = event_file_bytes(time.time())
        self._records = {split: [start] for split in SPLITS}

    def add_epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Add epoch ``epoch``'s (0-based) ``loss``/``accuracy`` and their ``val_`` twins,
        and rewrite both files."""
        now = time.time()
        for split, prefix in SPLITS.items():
            records = self._records[split]
            records.append(scalar_record("epoch_loss", logs[prefix + "loss"], epoch, now))
            records.append(scalar_record("epoch_accuracy", logs[prefix + "accuracy"], epoch,
                                         now))
            atomic_write_bytes(self.folder() / LOGS_DIR / split / self.name, b"".join(records))
