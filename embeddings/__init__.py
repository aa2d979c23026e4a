"""TensorFlow's word-embeddings tutorial on PyTorch, proven identical, and fast."""

import os

# Large CPU tensors, such as the (V, D) gradient tables of a big vocabulary, on transparent
# huge pages: a fresh table then faults in 512 times fewer pages (measured here: two fresh
# 1M x 128 float32 tables zeroed in 55 ms instead of 252 ms). PyTorch reads this once, at
# its first allocation, so it takes effect only when this package is imported before torch,
# as the command-line tools and benchmarks are. THP_MEM_ALLOC_ENABLE=0 turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("embeddings")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "unknown"
