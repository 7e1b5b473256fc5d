"""Audit storage behind a URL: the store interface, query model and backend choice.

``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` use SQLite (WAL);
``postgresql://user@host:port/db`` (or ``postgres://``) uses PostgreSQL. The optional
query parameter ``?table=name`` selects the table (default ``dijk_audit``); checkpoints
live beside it in ``<name>_checkpoint``.

Both backends implement :class:`AuditStore` and pass one contract test suite.
"""

from __future__ import annotations

import base64
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from dijk.audit.chain import (
    ChainedRecord,
    Checkpoint,
    PruneRefusedError,
    verify_chain,
)
from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord, Finding, datetime_from_us, datetime_to_us
from dijk.audit.summary import TrafficSummary, bucket_width, summarise

__all__ = [
    "DEFAULT_TABLE",
    "AuditPage",
    "AuditQuery",
    "AuditSinkError",
    "AuditStore",
    "AuditStoreError",
    "AuditStoreNotFoundError",
    "AuditURLError",
    "ChainConflictError",
    "ChainInUseError",
    "StoreURL",
    "open_store",
    "parse_store_url",
    "parse_time",
    "prune",
]

DEFAULT_TABLE: Final = "dijk_audit"
_TABLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_STATUS_CLASS: Final = re.compile(r"([1-5])xx")
_RELATIVE: Final = re.compile(r"(\d+)([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 date/time (naive means UTC) or a relative ``<n><s|m|h|d|w>`` ago.

    Raises ``ValueError`` with the accepted forms.
    """
    moment = now or datetime.now(UTC)
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return moment - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601 (2025-01-31T12:00:00Z) or 15m, 2h, 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class AuditStoreError(Exception):
    """Base of every audit storage error; its message is fit for an end user."""


class AuditURLError(AuditStoreError):
    """The audit URL cannot be used (unknown scheme, bad table name, ...)."""


class AuditStoreNotFoundError(AuditStoreError):
    """The database or its audit table does not exist (and was not to be created)."""


class AuditSinkError(AuditStoreError):
    """The store could not be reached or refused an operation."""


class ChainConflictError(AuditStoreError):
    """A replayed record collides with a different record at the same place.

    Two writers use the same chain name, or the database was changed behind the writer's
    back. Replay stops and the spool is kept for an operator to look at.
    """


class ChainInUseError(AuditStoreError):
    """Another writer holds the chain: a hash chain has exactly one writer.

    Raised by :meth:`AuditStore.claim` (and by the writer for its spool) at start-up, at
    once and never after a wait; the message names the database or file, the holder when
    known, and what to change. A gateway refuses to start with it.
    """


@dataclass(frozen=True, slots=True)
class StoreURL:
    scheme: Literal["sqlite", "postgresql"]
    target: str
    """SQLite: the file path (or ``:memory:``); PostgreSQL: the DSN without our parameters."""
    table: str
    redacted: str
    """The URL without any password, for messages."""


def parse_store_url(url: str) -> StoreURL:
    """Split an audit URL into backend, target and table; raises :class:`AuditURLError`."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    table = DEFAULT_TABLE
    rest: list[tuple[str, str]] = []
    for name, value in query:
        if name == "table":
            table = value
        else:
            rest.append((name, value))
    if not _TABLE_NAME.fullmatch(table):
        raise AuditURLError(
            f"bad table name {table!r}: use lowercase letters, digits and _ (at most 48)"
        )
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        netloc = netloc.split(":", 1)[0] + ":***@" + netloc.split("@", 1)[1]
    redacted = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if parts.scheme == "sqlite":
        if not url.startswith("sqlite:///") or parts.netloc:
            raise AuditURLError(
                f"bad SQLite URL {redacted!r}: use sqlite:///relative/path.db or"
                " sqlite:////absolute/path.db"
            )
        if rest:
            raise AuditURLError(f"unknown parameter {rest[0][0]!r} in {redacted!r}")
        path = parts.path[1:]
        if not path:
            raise AuditURLError(f"SQLite URL {redacted!r} names no file")
        return StoreURL("sqlite", path, table, redacted)
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and "host" not in dict(rest):
            raise AuditURLError(f"PostgreSQL URL {redacted!r} names no host")
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
        return StoreURL("postgresql", dsn, table, redacted)
    raise AuditURLError(
        f"unsupported audit URL {redacted!r}: use sqlite:///path or postgresql://user@host/db"
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for :meth:`AuditStore.query`. ``until`` is exclusive.

    ``status`` is a code (``404``) or a class (``"4xx"``); ``reason`` is a code
    (``waf.sqli``) or a prefix ending in ``*`` (``waf.*``). Results come in time order
    (oldest first unless ``newest_first``), ``limit`` at a time; pass the page's
    ``next_cursor`` back as ``cursor`` for the next page.
    """

    since: datetime | None = None
    until: datetime | None = None
    consumer: str | None = None
    status: int | str | None = None
    reason: str | None = None
    decision: str | None = None
    chain: str | None = None
    route: str | None = None
    limit: int = 100
    cursor: str | None = None
    newest_first: bool = False

    def status_range(self) -> tuple[int, int] | None:
        """``[low, high)`` of status codes matched, or None for no filter."""
        if self.status is None:
            return None
        if isinstance(self.status, int):
            return (self.status, self.status + 1)
        text = self.status.strip().lower()
        match = _STATUS_CLASS.fullmatch(text)
        if match:
            low = int(match.group(1)) * 100
            return (low, low + 100)
        if text.isdigit():
            return (int(text), int(text) + 1)
        raise ValueError(f"status filter must be a code like 404 or a class like 4xx, not {text!r}")


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[ChainedRecord]
    next_cursor: str | None


def encode_cursor(row: ChainedRecord) -> str:
    raw = orjson.dumps([row.record.time_us, row.chain, row.seq])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_us, chain, seq = orjson.loads(base64.urlsafe_b64decode(padded))
        if not (isinstance(time_us, int) and isinstance(chain, str) and isinstance(seq, int)):
            raise ValueError
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValueError("invalid pagination cursor") from None
    return time_us, chain, seq


def build_where(
    query: AuditQuery,
    placeholder: Callable[[int], str],
    time_column: str,
    time_value: Callable[[int], Any],
) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` text and parameters for ``query``, shared by both backends.

    ``placeholder(n)`` renders the n-th parameter (``?`` or ``$n``); ``time_value`` maps
    microseconds to the backend's time representation. Every value is a bound parameter.
    """
    clauses: list[str] = []
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return placeholder(len(params))

    if query.since is not None:
        clauses.append(f"{time_column} >= {bind(time_value(datetime_to_us(query.since)))}")
    if query.until is not None:
        clauses.append(f"{time_column} < {bind(time_value(datetime_to_us(query.until)))}")
    if query.consumer is not None:
        clauses.append(f"consumer = {bind(query.consumer)}")
    status = query.status_range()
    if status is not None:
        clauses.append(f"status >= {bind(status[0])} AND status < {bind(status[1])}")
    if query.reason is not None:
        if query.reason.endswith("*"):
            # substr, not LIKE: LIKE is case-insensitive in SQLite and has wildcards.
            prefix = query.reason[:-1]
            clauses.append(f"substr(reason, 1, {bind(len(prefix))}) = {bind(prefix)}")
        else:
            clauses.append(f"reason = {bind(query.reason)}")
    if query.decision is not None:
        clauses.append(f"decision = {bind(query.decision)}")
    if query.chain is not None:
        clauses.append(f"chain = {bind(query.chain)}")
    if query.route is not None:
        clauses.append(f"route = {bind(query.route)}")
    if query.cursor is not None:
        time_us, chain, seq = decode_cursor(query.cursor)
        operator = "<" if query.newest_first else ">"
        key = f"({bind(time_value(time_us))}, {bind(chain)}, {bind(seq)})"
        clauses.append(f"({time_column}, chain, seq) {operator} {key}")
    where = " AND ".join(clauses) if clauses else "TRUE"
    return where, params


def stored_findings(record: AuditRecord) -> str:
    if not record.findings:
        return "[]"
    items = [{"field": item.field, "rule_id": item.rule_id} for item in record.findings]
    return orjson.dumps(items, option=orjson.OPT_SORT_KEYS).decode()


def stored_pii(record: AuditRecord) -> str:
    if not record.pii_categories:
        return "[]"
    return orjson.dumps(list(record.pii_categories)).decode()


def _loaded_findings(text: Any) -> Any:
    """Findings from the stored JSON; anything unexpected is kept raw (verify flags it)."""
    try:
        items = orjson.loads(text)
        return tuple(Finding(rule_id=item["rule_id"], field=item["field"]) for item in items)
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return text


def _loaded_pii(text: Any) -> Any:
    try:
        items = orjson.loads(text)
        if isinstance(items, list):
            return tuple(items)
    except (orjson.JSONDecodeError, TypeError):
        pass
    return text


def stored_record(
    *,
    time_us: Any,
    request_id: Any,
    method: Any,
    route: Any,
    path_template: Any,
    status: Any,
    decision: Any,
    reason: Any,
    consumer: Any,
    auth_method: Any,
    credential_id: Any,
    client_ip: Any,
    findings: Any,
    gateway_latency_us: Any,
    upstream_latency_us: Any,
    bytes_in: Any,
    bytes_out: Any,
    pii_categories: Any,
) -> AuditRecord:
    """Rebuild a record from stored columns exactly as found (see ``unchecked``)."""
    time = datetime_from_us(time_us) if isinstance(time_us, int) else datetime.fromtimestamp(0, UTC)
    return AuditRecord.unchecked(
        time=time,
        time_us=time_us,
        request_id=request_id,
        method=method,
        route=route,
        path_template=path_template,
        status=status,
        decision=decision,
        reason=reason,
        consumer=consumer,
        auth_method=auth_method,
        credential_id=credential_id,
        client_ip=client_ip,
        findings=_loaded_findings(findings),
        gateway_latency_us=gateway_latency_us,
        upstream_latency_us=upstream_latency_us,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        pii_categories=_loaded_pii(pii_categories),
    )


def check_replayed(rows: Sequence[ChainedRecord], stored: dict[int, bytes]) -> None:
    """Raise :class:`ChainConflictError` unless every replayed row is stored as sent."""
    for sealed in rows:
        if stored.get(sealed.seq) != sealed.hash:
            raise ChainConflictError(
                f"chain {sealed.chain!r} seq {sealed.seq} in the database differs from the spool"
            )


class AuditStore(ABC):
    """An audit database. Methods raise :class:`AuditSinkError` when it is unreachable."""

    url: StoreURL

    @abstractmethod
    async def connect(self) -> None:
        """Open connections; create the tables when the store was opened with ``create``."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections and give up a chain held by :meth:`claim`."""

    @abstractmethod
    async def claim(self, chain: str) -> None:
        """Become the only writer of ``chain`` until :meth:`close`, or fail at once.

        The writer calls it before it reads the chain's tail; readers (queries, exports,
        verification, pruning) never do, so they keep working while a writer runs. Raises
        :class:`ChainInUseError` when another writer (another process, or another store
        object in this one) holds the chain, and :class:`AuditSinkError` when the store
        cannot be reached to find out; the claim is then retried by ``connect`` and by the
        next write, which raise :class:`ChainInUseError` if someone else took it meanwhile.
        Claiming the chain this store already holds does nothing.
        """

    @abstractmethod
    async def append(
        self, rows: Sequence[ChainedRecord], checkpoint: Checkpoint | None = None
    ) -> None:
        """Insert ``rows`` (and a checkpoint) in one transaction: all or nothing."""

    @abstractmethod
    async def append_replayed(self, rows: Sequence[ChainedRecord]) -> None:
        """Insert rows that may already be there (spool replay after an unclear failure).

        Rows already present with the same hash are skipped; a different row at the same
        place raises :class:`ChainConflictError`.
        """

    @abstractmethod
    async def tail(self, chain: str) -> tuple[int, bytes] | None:
        """``(seq, hash)`` of the newest row of ``chain``, or None when it has none."""

    @abstractmethod
    async def chains(self) -> list[str]: ...

    @abstractmethod
    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]:
        """Rows of ``chain`` with ``seq > after_seq`` in sequence order."""

    @abstractmethod
    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]: ...

    @abstractmethod
    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]:
        """Checkpoints in (chain, seq) order."""

    @abstractmethod
    async def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    @abstractmethod
    async def query(self, query: AuditQuery) -> AuditPage: ...

    @abstractmethod
    async def summary_rows(
        self, since: datetime, until: datetime, width_us: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Rows of the two :func:`dijk.audit.summary.summary_queries` for ``[since, until)``
        in buckets of ``width_us``."""

    async def summary(self, since: datetime, until: datetime, buckets: int) -> TrafficSummary:
        """Traffic in ``[since, until)`` in ``buckets`` time buckets (``dijk.audit.summary``)."""
        timeline, breakdown = await self.summary_rows(
            since, until, bucket_width(since, until, buckets)
        )
        return summarise(since, until, buckets, timeline, breakdown)

    @abstractmethod
    async def first_seq_since(self, chain: str, since: datetime) -> int | None:
        """The lowest seq of ``chain`` whose time is at or after ``since``."""

    @abstractmethod
    async def delete_through(self, chain: str, seq: int, anchor: Checkpoint) -> int:
        """Store ``anchor`` and delete rows of ``chain`` up to ``seq``, atomically."""

    async def __aenter__(self) -> AuditStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def open_store(url: str, *, create: bool = False, durable: bool = True) -> AuditStore:
    """The store for ``url`` (not yet connected: call ``connect`` or use ``async with``).

    ``create`` makes the database and tables when missing (the writer does; the CLI
    does not, so a mistyped path gives an error instead of an empty log). ``durable``
    asks SQLite to sync every commit (``synchronous=FULL``, for strict durability); with
    ``False`` commits survive a crash of the process but not of the machine.
    """
    parsed = parse_store_url(url)
    if parsed.scheme == "sqlite":
        from dijk.audit.sqlite import SQLiteAuditStore

        return SQLiteAuditStore(parsed, create=create, durable=durable)
    from dijk.audit.postgres import PostgresAuditStore

    return PostgresAuditStore(parsed, create=create)


async def prune(
    store: AuditStore, keys: AuditKeys, before: datetime, chains: Sequence[str] | None = None
) -> dict[str, int]:
    """Delete records older than ``before``, keeping every chain verifiable.

    Per chain: verify it first (never sign a checkpoint over a tampered row), find the
    cut (everything before the first record at or after ``before``; the newest record is
    always kept so the chain's tail stays visible), store a signed ``prune`` checkpoint
    at the cut and delete up to it in the same transaction. Returns rows deleted per chain.
    """
    deleted: dict[str, int] = {}
    for chain in chains if chains is not None else await store.chains():
        tail = await store.tail(chain)
        if tail is None:
            continue
        first_kept = await store.first_seq_since(chain, before)
        cut = min(tail[0], first_kept if first_kept is not None else tail[0]) - 1
        oldest = await store.read_chain(chain, -1, 1)
        if not oldest or cut < oldest[0].seq:
            deleted[chain] = 0  # nothing older than ``before`` left (or already pruned)
            continue
        report = await verify_chain(store, chain, keys.hmac_key, keys.public_key)
        bad = [problem for problem in report.problems if problem.seq <= cut + 1]
        if bad:
            raise PruneRefusedError(
                f"chain {chain!r} does not verify at seq {bad[0].seq} ({bad[0].kind});"
                " refusing to prune over it"
            )
        rows = await store.read_chain(chain, cut - 1, 1)
        if not rows or rows[0].seq != cut:
            raise PruneRefusedError(f"chain {chain!r} has no record at seq {cut}")
        anchor = Checkpoint.create(keys, chain, cut, rows[0].hash, kind="prune")
        deleted[chain] = await store.delete_through(chain, cut, anchor)
    return deleted
