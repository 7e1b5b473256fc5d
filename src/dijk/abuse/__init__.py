"""Behaviour and abuse detection: signals, windows, sketches and incidents (see README)."""
