"""Shared state behind a URL: ``memory://`` (one instance) or ``redis://`` (many)."""

from __future__ import annotations

from urllib.parse import urlsplit

from dijk.storage.base import Storage, StorageUnavailable
from dijk.storage.memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "StorageUnavailable", "open_storage", "storage_scheme"]

SCHEMES = ("memory", "redis", "rediss")


def storage_scheme(url: str) -> str:
    """The scheme of a storage URL, or ValueError with a message fit for a config error."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"unsupported storage URL scheme {scheme!r}: use memory:// or redis://host:port/db"
        )
    return scheme


def open_storage(url: str, *, timeout_s: float = 0.25) -> Storage:
    """Create (not connect) a backend; connections are made lazily on first use."""
    scheme = storage_scheme(url)
    if scheme == "memory":
        return MemoryStorage(url)
    from dijk.storage.redis import RedisStorage

    return RedisStorage(url, timeout_s=timeout_s)
