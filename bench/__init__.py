"""Benchmarks that print tables and write JSON under bench/results/ (never timed assertions in tests)."""
