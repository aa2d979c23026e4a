"""Benchmarks that write JSON reports: ``python -m benchmarks.<name>``."""

# Before torch: the package sets torch's allocator options (see embeddings/__init__.py), so
# that every case of a benchmark runs under the settings the command-line tools use.
import embeddings  # noqa: F401
