"""Dijk: an open-source API security gateway."""

__version__ = "0.1.0"
