"""TensorFlow's Philox random streams, rebuilt in NumPy.

Two places of the tutorial depend on TensorFlow's random numbers, and both are
reproduced here bit for bit (``PARITY.md`` sections 6 and 8):

* the tf.data ``shuffle`` of each subset (:func:`shuffle_order`), and
* Keras's seeded initializers, which call ``tf.random.stateless_uniform``
  (:func:`stateless_uniform`).

Both are built on Philox4x32-10 (Salmon et al., 2011): a 64-bit key and a
128-bit counter give four 32-bit words per block.  No TensorFlow is imported.
"""

from __future__ import annotations

import numpy as np

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)

# TensorFlow's DEFAULT_GRAPH_SEED: the first seed of every random op built while
# no global seed is set (the tutorial sets none before it makes its datasets).
DEFAULT_GRAPH_SEED = 87654321


def philox4x32(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Run Philox4x32-10 on a batch of counters.

    Args:
        counters (np.ndarray): ``(N, 4)`` uint32 counters, word 0 least significant.
        key (tuple[int, int]): the two 32-bit key words.

    Returns:
        np.ndarray: ``(N, 4)`` uint32 output blocks.
    """
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = int(key[0]), int(key[1])
    for _ in range(10):
        p0 = _M0 * c[0]
        p1 = _M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK32
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
        k0 = (k0 + _W0) & 0xFFFFFFFF
        k1 = (k1 + _W1) & 0xFFFFFFFF
    return np.stack(c, axis=1).astype(np.uint32)


def _counters(counter: tuple[int, int, int, int], n: int) -> np.ndarray:
    """Counters ``counter + 0 .. counter + n - 1`` as ``(n, 4)`` uint32 (128-bit adds)."""
    base = sum(int(w) << (32 * i) for i, w in enumerate(counter))
    base_lo = np.uint64(base & 0xFFFFFFFFFFFFFFFF)
    lo = base_lo + np.arange(n, dtype=np.uint64)  # wraps mod 2**64
    hi = np.uint64(base >> 64) + (lo < base_lo).astype(np.uint64)  # the carry
    words = [lo & _MASK32, lo >> np.uint64(32), hi & _MASK32, hi >> np.uint64(32)]
    return np.stack(words, axis=1).astype(np.uint32)


def philox_words(seed: int, seed2: int, n: int) -> np.ndarray:
    """The first ``n`` words of TensorFlow's ``PhiloxRandom(seed, seed2)``.

    This is ``SingleSampleAdapter<PhiloxRandom>``: the key is the low and high
    word of ``seed``, the counter starts at ``(0, 0, lo(seed2), hi(seed2))``, each
    block's four words are used in order, then the counter goes up by one.

    Args:
        seed (int): the 64-bit first seed.
        seed2 (int): the 64-bit second seed.
        n (int): how many 32-bit words to draw.

    Returns:
        np.ndarray: ``(n,)`` uint32 words.
    """
    key = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    counter = (0, 0, seed2 & 0xFFFFFFFF, (seed2 >> 32) & 0xFFFFFFFF)
    return philox4x32(_counters(counter, -(-n // 4)), key).reshape(-1)[:n]


def pass_seeds(seed: int, seed2: int, pass_index: int) -> tuple[int, int]:
    """The Philox seeds of iteration ``pass_index`` over a shuffled tf.data dataset.

    A ``ShuffleDataset`` keeps a seed generator ``Philox(seed, seed2)``; each new
    iterator takes its next two words as the seeds of that pass's own stream.
    """
    words = philox_words(seed, seed2, 2 * (pass_index + 1))
    return int(words[2 * pass_index]), int(words[2 * pass_index + 1])


def shuffle_order(
    n: int, buffer_size: int, seed: int = DEFAULT_GRAPH_SEED, seed2: int = 0, pass_index: int = 0
) -> np.ndarray:
    """The order in which ``tf.data.Dataset.shuffle`` yields ``range(n)``.

    Reproduces ``ShuffleDatasetV3`` (``reshuffle_each_iteration=True``): a ring
    buffer of ``buffer_size`` elements, refilled before each output, from which
    the element at ``start + R() % filled`` is emitted and swapped with the
    buffer's head.

    Args:
        n (int): number of input elements.
        buffer_size (int): the shuffle buffer size.
        seed (int): the op's first seed (the global seed, or TF's default graph
            seed when none is set). Default: ``87654321``.
        seed2 (int): the op seed passed to ``shuffle(seed=...)``. Default: ``0``.
        pass_index (int): which iteration over the dataset (0 = first). Default: ``0``.

    Returns:
        np.ndarray: int64 permutation of ``range(n)``: ``order[i]`` is the input
        index of the i-th output.
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1. Received: buffer_size={buffer_size}")
    draws = philox_words(*pass_seeds(seed, seed2, pass_index), n)
    buf = [0] * min(buffer_size, n)  # a buffer as large as the input never wraps
    order = np.empty(n, dtype=np.int64)
    start = end = 0
    next_input = 0
    for i in range(n):
        while end - start < buffer_size and next_input < n:
            buf[end % buffer_size] = next_input
            next_input += 1
            end += 1
        idx = (start + int(draws[i]) % (end - start)) % buffer_size
        head = start % buffer_size
        order[i] = buf[idx]
        buf[idx], buf[head] = buf[head], buf[idx]
        start += 1
    return order


# Key of the Philox block that turns a stateless op's seed into its stream.
_STATELESS_KEY = (0x3EC8F720, 0x02461E29)


def stateless_uniform(
    shape: tuple[int, ...], seed: tuple[int, int], minval: float, maxval: float
) -> np.ndarray:
    """``tf.random.stateless_uniform(shape, seed, minval, maxval, tf.float32)``.

    Args:
        shape (tuple[int, ...]): output shape, filled in row-major order.
        seed (tuple[int, int]): the two int32 seed values.
        minval (float): lower bound, rounded to float32.
        maxval (float): upper bound, rounded to float32.

    Returns:
        np.ndarray: float32 array of ``shape``.
    """
    s0, s1 = (int(v) & 0xFFFFFFFFFFFFFFFF for v in seed)
    first = philox4x32(
        np.array([[s0 & 0xFFFFFFFF, s0 >> 32, s1 & 0xFFFFFFFF, s1 >> 32]], dtype=np.uint32),
        _STATELESS_KEY,
    )[0]
    key = (int(first[0]), int(first[1]))
    size = int(np.prod(shape, dtype=np.int64))
    counters = _counters((0, 0, int(first[2]), int(first[3])), -(-size // 4))
    words = philox4x32(counters, key).reshape(-1)[:size]
    unit = ((words & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1)
    lo, hi = np.float32(minval), np.float32(maxval)
    return (unit * (hi - lo) + lo).astype(np.float32).reshape(shape)
