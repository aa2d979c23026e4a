"""The order of the reviews: Keras's training/validation split and tf.data's shuffle.

``keras.utils.text_dataset_from_directory(..., validation_split=0.2, seed=123)`` splits
the files of its sorted walk with NumPy's ``RandomState``, then shuffles each subset
with tf.data's ring buffer on Philox (``PARITY.md`` section 6).  Pass 0 is the order
every epoch of the tutorial reads, because of its ``.cache()``; :func:`epoch_pass` says
which pass an epoch reads without it.
"""

from __future__ import annotations

import functools

import numpy as np

from embeddings.errors import InvalidInput
from embeddings.tfrandom import DEFAULT_GRAPH_SEED, shuffle_order


def split_indices(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keras's training/validation split of ``n`` files in sorted-walk order.

    ``np.random.RandomState(seed).shuffle`` permutes the list, then the last
    ``int(validation_split * n)`` files are the validation subset.

    Returns:
        tuple[np.ndarray, np.ndarray]: the training and validation indices, in that order.

    Raises:
        ValueError: the split leaves one of the subsets empty.
    """
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    num_val = int(validation_split * n)
    if not 0 < num_val < n:
        raise InvalidInput(
            f"validation_split={validation_split} of {n} reviews leaves a subset empty. "
            f"Received: validation_split={validation_split}; use a value such that both subsets "
            "hold at least one review."
        )
    return order[:-num_val], order[-num_val:]


@functools.lru_cache(maxsize=32)
def tfdata_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The order in which the tutorial's tf.data pipeline yields a subset in one pass.

    ``text_dataset_from_directory`` shuffles each subset with ``shuffle(8 * batch_size,
    seed=seed)`` and no global seed, so pass ``k`` draws from the ``k``-th seed pair of
    ``Philox(87654321, seed)`` (``PARITY.md`` section 6.7).  The ring-buffer shuffle is a
    Python loop (about 19 ms for 20,000 rows here), so each order is computed once and
    returned read-only.

    Returns:
        np.ndarray: ``order[i]`` is the position, in the split order, of the i-th row.
    """
    order = shuffle_order(n, 8 * batch_size, DEFAULT_GRAPH_SEED, seed, pass_index)
    order.flags.writeable = False
    return order


def epoch_pass(epoch: int, reshuffle: bool) -> int:
    """Which tf.data pass of the training subset the tutorial's epoch ``epoch`` (0-based) reads.

    With ``.cache()`` (the tutorial) every epoch reads pass 0, the one ``adapt`` filled the
    cache with.  ``--reshuffle`` is the tutorial with ``.cache()`` removed from the training
    dataset: ``adapt`` reads pass 0, and Keras 3's ``fit`` then opens two iterators per
    epoch, trains on the first and drops the second, which it opens when the epoch's last
    batch is read (``EpochIterator._enumerate_iterator``).  Measured with TensorFlow 2.21 and
    Keras 3.15 by recording the batches ``fit`` sees: epochs 1, 2, 3 read passes 1, 3, 5.
    """
    return 2 * epoch + 1 if reshuffle else 0


def pass_order(n: int, batch_size: int, seed: int, pass_index: int) -> np.ndarray:
    """The rows of pass ``pass_index`` as positions in pass 0, the order
    :func:`~embeddings.data.splits.load_imdb` returns: ``rows[pass_order(...)]`` is what
    that pass yields."""
    if pass_index == 0:
        return np.arange(n)
    return split_order(n, batch_size, seed)[tfdata_order(n, batch_size, seed, pass_index)]


def split_order(n: int, batch_size: int, seed: int) -> np.ndarray:
    """The rows in the split order (before tf.data's shuffle), as positions in pass 0:
    what ``text_dataset_from_directory`` hands to its ``shuffle``; equally, where each
    split-order row sits in pass 0."""
    return np.argsort(tfdata_order(n, batch_size, seed, 0))
