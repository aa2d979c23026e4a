"""Benchmarks that write JSON reports: ``python -m benchmarks.<name>``."""
