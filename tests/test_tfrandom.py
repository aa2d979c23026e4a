from __future__ import annotations

import numpy as np
import pytest

from embeddings import tfrandom


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [
        # Known-answer vectors of Random123 (kat_vectors, philox4x32_10).
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                        0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ],
)
def test_philox_matches_random123_known_answers(counter, key, expected) -> None:
    out = tfrandom.philox4x32(np.array([counter], dtype=np.uint32), key)
    assert tuple(int(x) for x in out[0]) == expected


def test_pass_seeds_match_tensorflow_test_vector() -> None:
    # PARITY.md section 6.7: the seed generator of shuffle(seed=123) with no global seed.
    got = [tfrandom.pass_seeds(tfrandom.DEFAULT_GRAPH_SEED, 123, k) for k in range(3)]
    assert got == [(1887779136, 1293593996), (3473653811, 257548726), (727353662, 2159198045)]


def test_counter_carries_into_high_words() -> None:
    # Words after the 2**32-th block must come from a counter whose word 1 was carried into.
    counters = tfrandom._counters((0xFFFFFFFF, 0xFFFFFFFF, 5, 0), 2)
    assert counters.tolist() == [[0xFFFFFFFF, 0xFFFFFFFF, 5, 0], [0, 0, 6, 0]]


def test_philox_words_are_blocks_in_order() -> None:
    words = tfrandom.philox_words(42, 7, 10)
    blocks = tfrandom.philox4x32(np.array([[0, 0, 7, 0], [1, 0, 7, 0], [2, 0, 7, 0]],
                                          dtype=np.uint32), (42, 0))
    assert words.tolist() == blocks.reshape(-1)[:10].tolist()


def test_shuffle_order_is_a_permutation_and_depends_on_pass() -> None:
    first = tfrandom.shuffle_order(100, 7, seed2=123, pass_index=0)
    second = tfrandom.shuffle_order(100, 7, seed2=123, pass_index=1)
    assert sorted(first.tolist()) == list(range(100))
    assert first.tolist() != second.tolist()


def test_shuffle_buffer_limits_how_far_an_element_moves_forward() -> None:
    # With a buffer of b, output i is drawn from inputs seen so far: at most index i + b - 1.
    order = tfrandom.shuffle_order(500, 8, seed2=1)
    assert all(src <= i + 7 for i, src in enumerate(order.tolist()))


def test_shuffle_rejects_empty_buffer() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        tfrandom.shuffle_order(10, 0)


def test_stateless_uniform_matches_tensorflow_initial_weights() -> None:
    # PARITY.md section 8 test vectors (seed 0 of the tutorial).
    emb = tfrandom.stateless_uniform((10000, 16), (906691060, 0), -0.05, 0.05)
    assert emb.dtype == np.float32
    assert emb[0, :4].tolist() == np.array(
        [0.0015684366, -0.0190938, 0.033890437, -0.039339818], dtype=np.float32).tolist()
    lim = float(np.sqrt(3 / 16))
    dense = tfrandom.stateless_uniform((16, 16), (413654000, 0), -lim, lim)
    assert dense[0, :3].tolist() == np.array(
        [-0.15347576, -0.2628184, -0.19051446], dtype=np.float32).tolist()


def test_stateless_uniform_stays_in_range() -> None:
    values = tfrandom.stateless_uniform((1000,), (1, 2), -0.5, 0.25)
    assert values.min() >= -0.5 and values.max() < 0.25


def test_a_buffer_larger_than_the_input_costs_only_the_input() -> None:
    """A buffer that holds every element never wraps, so its size beyond the input changes
    nothing, and ``--batch-size 2147483647`` (a 16-billion-slot buffer) allocates only n."""
    assert np.array_equal(tfrandom.shuffle_order(50, 2**34, seed2=5),
                          tfrandom.shuffle_order(50, 50, seed2=5))
