"""Benchmarks of the recovery engine (issue 3, "Speed"). Not collected by pytest: see README.md."""
