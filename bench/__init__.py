"""Benchmarks: runnable scripts that print Markdown tables (see each script's --help)."""
