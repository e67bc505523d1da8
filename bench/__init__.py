"""Benchmarks and quality evaluations. Figures are measured here, never asserted in tests."""
