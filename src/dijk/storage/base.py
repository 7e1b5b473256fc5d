"""The storage contract: small, atomic key operations behind a URL.

Counters, revocation lists and abuse state live here, so several gateway instances can
share them (``redis://``) or one instance can keep them in process (``memory://``). Every
backend passes the same contract suite (``tests/integration/test_storage_contract.py``).
A backend that cannot answer within its timeout raises :class:`StorageUnavailable`; stages
turn that into their configured ``on_storage_error`` behaviour, never into a hang.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class StorageUnavailable(Exception):
    """The backend did not answer (down, timeout, connection refused)."""


class Storage(ABC):
    """Async key/value operations; keys are ``str``, values ``bytes``; TTLs in seconds."""

    url: str

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` and return the new value; ``ttl_s`` applies when the key is new."""

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...
