"""Benchmarks of the guard (``python -m bench.run``); see bench/README.md."""
