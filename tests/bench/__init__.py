"""Benchmarks (recovery engine, webhooks, notifications, pages, analytics). Not collected by pytest: see README.md."""
