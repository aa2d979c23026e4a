"""Arrow arrays made from their buffers, never through ``pa.array``.

``pa.array`` imports pandas at its first call, whatever it is given (pyarrow asks pandas
whether the input is one of its objects): 0.2 s and 56 MB of a tutorial run that never
uses pandas.  The vectorizer and the IMDb loader build their arrays here instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def numbers(values: np.ndarray) -> pa.Array:
    """A 1-D NumPy array of numbers or booleans as an Arrow array of the same type (a copy
    only where the array is not contiguous, or for booleans, which Arrow packs in bits)."""
    values = np.ascontiguousarray(values)
    if values.ndim != 1:
        raise ValueError(f"numbers takes a 1-D array. Received: shape={values.shape}")
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def binary(values: Sequence[bytes | None]) -> pa.Array:
    """``values`` as one ``large_binary`` array (``None``: null): one joined buffer, not an
    Arrow object per value."""
    count = len(values)
    valid = np.fromiter((v is not None for v in values), bool, count)  # (N,)
    offsets = np.zeros(count + 1, dtype=np.int64)  # (N + 1,)
    np.cumsum(np.fromiter((len(v) if v is not None else 0 for v in values), np.int64, count),
              out=offsets[1:])
    nulls = count - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    data = b"".join(v for v in values if v is not None)
    return pa.Array.from_buffers(pa.large_binary(), count,
                                 [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], nulls)


def to_numpy(values: pa.Array | pa.ChunkedArray, fill: float | None = None) -> np.ndarray:
    """An Arrow array of numbers or booleans (a table's column too) as a NumPy array, its
    nulls replaced by ``fill``: numbers without nulls as a read-only view of their buffer,
    booleans unpacked from their bits.

    Arrow's own ``to_numpy`` (even a zero-copy view) and ``fill_null`` with a Python value
    go through pyarrow's pandas code, which imports pandas; only other types, or nulls
    without ``fill``, are handed to it here."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if (values.null_count and fill is None) or not (
            pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return values.to_numpy(zero_copy_only=False)
    start, stop = values.offset, values.offset + len(values)
    validity, data = values.buffers()[:2]
    if pa.types.is_boolean(kind):
        out = _bits(data, start, stop)
    else:
        code = "f" if pa.types.is_floating(kind) else \
            "i" if pa.types.is_signed_integer(kind) else "u"
        dtype = np.dtype(f"{code}{kind.bit_width // 8}")
        out = np.frombuffer(data, dtype=dtype)[start:stop] if stop else np.zeros(0, dtype)
    if not values.null_count:
        return out
    assert fill is not None  # nulls without a fill went to Arrow above
    return np.where(_bits(validity, start, stop), out, fill)


def _bits(buffer: pa.Buffer | None, start: int, stop: int) -> np.ndarray:
    """Bits ``start:stop`` of an Arrow bitmap (least significant bit first) as booleans."""
    bits = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None and stop else \
        np.zeros(0, np.uint8)
    return np.unpackbits(bits, count=stop, bitorder="little")[start:].astype(bool)
