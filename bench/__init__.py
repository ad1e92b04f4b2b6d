"""Benchmarks against real servers: `python -m bench.run`. Never part of the test run."""
