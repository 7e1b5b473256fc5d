"""Benchmarks: throughput and detection quality, side by side with peers (see README.md)."""
