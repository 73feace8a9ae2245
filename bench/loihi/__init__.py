"""Benchmark of the Loihi backend (python -m bench.loihi)."""
