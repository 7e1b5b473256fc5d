"""The privacy tables in the audit database: the data map and the exposure log.

They live beside the audit log (``audit.url``: ``sqlite:///...`` or ``postgresql://...``)
so that one database answers the register and breach questions, but they are Dijk's own
tables, written by the privacy stage's periodic flush, never per request:

``<prefix>datamap``          per endpoint (method + path template), direction, field path,
                             category and consumer: records, occurrences, masked, not
                             needed by the consumer's scopes, first and last seen
``<prefix>datamap_consumer`` consumers seen: authentication method, scopes, first/last seen
``<prefix>datamap_meta``     settings the reports need: region, retention, OpenAPI documents
``<prefix>exposure``         per time bucket, endpoint, consumer, client (pseudonym), reason
                             and category: responses and values delivered (category ``*``:
                             responses with any personal data)
``<prefix>exposure_subject`` the distinct pseudonymous data subjects behind those values

No column ever holds a raw value: categories, path templates (a key that is itself
personal data reads ``[<email>]``), consumer names, reason codes and keyed pseudonyms.
Times are integer microseconds since the Unix epoch (UTC), like the audit log.
"""

# S608: table names come from a validated prefix ([a-z_][a-z0-9_]*); values are bound.
# ruff: noqa: S608
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dijk.audit.store import parse_store_url
from dijk.tables import connect_postgres, connect_sqlite, dollar

__all__ = ["Batch", "PrivacyDatabase", "PrivacyDatabaseError", "open_privacy_db"]

_PREFIX: Final = re.compile(r"[a-z_][a-z0-9_]{0,23}")

DATAMAP_KEY: Final = ("method", "endpoint", "direction", "field", "category", "consumer")
EXPOSURE_KEY: Final = (
    "bucket_us",
    "method",
    "endpoint",
    "consumer",
    "client",
    "reason",
    "category",
)


class PrivacyDatabaseError(Exception):
    """The database cannot be reached, or has no privacy tables; the message is for users."""


@dataclass(slots=True)
class Batch:
    """Rows of one flush, already aggregated."""

    datamap: list[tuple[Any, ...]] = field(default_factory=list)
    consumers: list[tuple[Any, ...]] = field(default_factory=list)
    exposure: list[tuple[Any, ...]] = field(default_factory=list)
    subjects: list[tuple[Any, ...]] = field(default_factory=list)
    meta: list[tuple[str, str]] = field(default_factory=list)
    prune_before_us: int | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.datamap or self.consumers or self.exposure or self.subjects or self.meta
        ) and (self.prune_before_us is None)


def _schema(prefix: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {prefix}datamap (
            method TEXT NOT NULL, endpoint TEXT NOT NULL, direction TEXT NOT NULL,
            field TEXT NOT NULL, category TEXT NOT NULL, consumer TEXT NOT NULL,
            route TEXT NOT NULL, records BIGINT NOT NULL, occurrences BIGINT NOT NULL,
            masked BIGINT NOT NULL, unneeded BIGINT NOT NULL,
            first_seen_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL,
            PRIMARY KEY (method, endpoint, direction, field, category, consumer))""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}datamap_consumer (
            consumer TEXT PRIMARY KEY, auth_method TEXT NOT NULL, scopes TEXT NOT NULL,
            first_seen_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}datamap_meta (
            name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}exposure (
            bucket_us BIGINT NOT NULL, method TEXT NOT NULL, endpoint TEXT NOT NULL,
            consumer TEXT NOT NULL, client TEXT NOT NULL, reason TEXT NOT NULL,
            category TEXT NOT NULL, client_net TEXT NOT NULL, records BIGINT NOT NULL,
            occurrences BIGINT NOT NULL, masked BIGINT NOT NULL,
            PRIMARY KEY (bucket_us, method, endpoint, consumer, client, reason, category))""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}exposure_subject (
            bucket_us BIGINT NOT NULL, method TEXT NOT NULL, endpoint TEXT NOT NULL,
            consumer TEXT NOT NULL, client TEXT NOT NULL, reason TEXT NOT NULL,
            category TEXT NOT NULL, subject TEXT NOT NULL,
            PRIMARY KEY (bucket_us, method, endpoint, consumer, client, reason, category,
                         subject))""",
    ]


def _later(table: str, column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.{column} > {table}.{column}"
        f" THEN excluded.{column} ELSE {table}.{column} END"
    )


def _earlier(table: str, column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.{column} < {table}.{column}"
        f" THEN excluded.{column} ELSE {table}.{column} END"
    )


def _statements(prefix: str) -> dict[str, str]:
    """Upserts with ``?`` placeholders (PostgreSQL gets ``$n``); both dialects accept them."""
    datamap = f"{prefix}datamap"
    consumer = f"{prefix}datamap_consumer"
    meta = f"{prefix}datamap_meta"
    exposure = f"{prefix}exposure"
    subject = f"{prefix}exposure_subject"
    return {
        "datamap": (
            f"INSERT INTO {datamap} (method, endpoint, direction, field, category, consumer,"
            " route, records, occurrences, masked, unneeded, first_seen_us, last_seen_us)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT ({', '.join(DATAMAP_KEY)}) DO UPDATE SET route = excluded.route,"
            f" records = {datamap}.records + excluded.records,"
            f" occurrences = {datamap}.occurrences + excluded.occurrences,"
            f" masked = {datamap}.masked + excluded.masked,"
            f" unneeded = {datamap}.unneeded + excluded.unneeded,"
            f" {_earlier(datamap, 'first_seen_us')}, {_later(datamap, 'last_seen_us')}"
        ),
        "consumers": (
            f"INSERT INTO {consumer} (consumer, auth_method, scopes, first_seen_us,"
            " last_seen_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer) DO UPDATE SET"
            " auth_method = excluded.auth_method, scopes = excluded.scopes,"
            f" {_earlier(consumer, 'first_seen_us')}, {_later(consumer, 'last_seen_us')}"
        ),
        "meta": (
            f"INSERT INTO {meta} (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
        "exposure": (
            f"INSERT INTO {exposure} (bucket_us, method, endpoint, consumer, client, reason,"
            " category, client_net, records, occurrences, masked)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT ({', '.join(EXPOSURE_KEY)}) DO UPDATE SET"
            f" records = {exposure}.records + excluded.records,"
            f" occurrences = {exposure}.occurrences + excluded.occurrences,"
            f" masked = {exposure}.masked + excluded.masked"
        ),
        "subjects": (
            f"INSERT INTO {subject} (bucket_us, method, endpoint, consumer, client, reason,"
            " category, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ),
        "prune_exposure": f"DELETE FROM {exposure} WHERE bucket_us < ?",
        "prune_subjects": f"DELETE FROM {subject} WHERE bucket_us < ?",
    }


class PrivacyDatabase(ABC):
    """The privacy tables behind ``audit.url``. Use ``async with`` or connect/close."""

    dialect = "sqlite"

    def __init__(self, prefix: str, redacted: str) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise PrivacyDatabaseError(f"bad table prefix {prefix!r}")
        self.prefix = prefix
        self.redacted = redacted
        self.sql = _statements(prefix)

    def table(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @abstractmethod
    async def connect(self, *, create: bool) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def write(self, batch: Batch) -> None:
        """Apply one flush in one transaction."""

    @abstractmethod
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a SELECT written with ``?`` placeholders."""

    @abstractmethod
    async def has_table(self, name: str) -> bool: ...

    async def __aenter__(self) -> PrivacyDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _SQLite(PrivacyDatabase):
    def __init__(self, path: str, prefix: str, redacted: str) -> None:
        super().__init__(prefix, redacted)
        self.path = path
        self._connection: Any = None

    async def connect(self, *, create: bool) -> None:
        if self._connection is None:
            self._connection = await connect_sqlite(
                self.path,
                self.redacted,
                _schema(self.prefix),
                create=create,
                error=PrivacyDatabaseError,
            )

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def write(self, batch: Batch) -> None:
        connection = self._connection
        assert connection is not None
        try:
            for name in ("datamap", "consumers", "exposure", "subjects", "meta"):
                rows = getattr(batch, name)
                if rows:
                    await connection.executemany(self.sql[name], rows)
            if batch.prune_before_us is not None:
                await connection.execute(self.sql["prune_exposure"], (batch.prune_before_us,))
                await connection.execute(self.sql["prune_subjects"], (batch.prune_before_us,))
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connection
        assert connection is not None
        async with connection.execute(sql, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def has_table(self, name: str) -> bool:
        rows = await self.fetch(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(rows)


class _Postgres(PrivacyDatabase):
    dialect = "postgresql"

    def __init__(self, dsn: str, prefix: str, redacted: str) -> None:
        super().__init__(prefix, redacted)
        self.dsn = dsn
        self._connection: Any = None

    async def connect(self, *, create: bool) -> None:
        if self._connection is None:
            self._connection = await connect_postgres(
                self.dsn,
                self.redacted,
                _schema(self.prefix),
                create=create,
                error=PrivacyDatabaseError,
                lock_key=727_273,
            )

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def write(self, batch: Batch) -> None:
        connection = self._connection
        assert connection is not None
        async with connection.transaction():
            for name in ("datamap", "consumers", "exposure", "subjects", "meta"):
                rows = getattr(batch, name)
                if rows:
                    await connection.executemany(dollar(self.sql[name]), rows)
            if batch.prune_before_us is not None:
                await connection.execute(dollar(self.sql["prune_exposure"]), batch.prune_before_us)
                await connection.execute(dollar(self.sql["prune_subjects"]), batch.prune_before_us)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connection
        assert connection is not None
        rows = await connection.fetch(dollar(sql), *params)
        return [tuple(row) for row in rows]

    async def has_table(self, name: str) -> bool:
        rows = await self.fetch("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(rows and rows[0][0])


def open_privacy_db(url: str, prefix: str = "dijk_") -> PrivacyDatabase:
    """The privacy tables of the database at ``url`` (the audit URL); not yet connected."""
    try:
        parsed = parse_store_url(url)
    except Exception as exc:  # AuditURLError: its message is for users
        raise PrivacyDatabaseError(str(exc)) from None
    if parsed.scheme == "sqlite":
        return _SQLite(parsed.target, prefix, url)  # a path: nothing to redact
    return _Postgres(parsed.target, prefix, parsed.redacted)
