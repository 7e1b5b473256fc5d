"""Live shipping of audit records to SIEMs (``audit.sinks``).

Each sink is a :class:`Shipper`: the writer hands it every batch once committed (a
non-blocking listener call), the shipper queues the records in memory (at most
``max_queue``; the oldest copies are dropped and counted beyond that) and a task of its own
sends them in batches through a transport:

``syslog``        RFC 5424 messages over UDP (one datagram each, RFC 5426), TCP (RFC 6587
                  octet counting) or TLS (RFC 5425, octet counting, TLS 1.2+)
``splunk-hec``    HTTP Event Collector, events concatenated in one POST
``elastic-bulk``  ``_bulk`` with ``create`` actions; the document id is ``<chain>-<seq>``,
                  so a retried batch never indexes a record twice (409 counts as delivered)
``otlp``          OTLP/HTTP with JSON encoding (``ExportLogsServiceRequest``)

A failed send is retried with exponential backoff (0.5 s doubling up to ``max_backoff_s``)
while new records keep queueing. Nothing here can slow a request: the writer never waits
for a shipper, and a shipper never waits for the writer. The database remains the record
of truth; a sink is a copy (``dijk audit export`` refills one after a long outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from dijk.audit import metrics
from dijk.audit.chain import ChainedRecord
from dijk.audit.export import (
    DEFAULT_INDEX,
    elastic_bulk_lines,
    otlp_request,
    splunk_hec_line,
    syslog_line,
)
from dijk.audit.settings import SinkSettings

__all__ = [
    "Shipper",
    "ShipperStats",
    "SinkError",
    "SinkRejectedError",
    "Transport",
    "create_shipper",
    "octet_frame",
]

_LOG: Final = structlog.get_logger("dijk.audit.sinks")
_MAX_DATAGRAM: Final = 65_000
_LOG_EVERY_S: Final = 10.0


class SinkError(Exception):
    """A send failed in a way worth retrying (receiver down, timeout, 5xx, 429)."""


class SinkRejectedError(Exception):
    """The receiver refused the batch itself (400, 413): retrying cannot help."""


class Transport(Protocol):
    async def send(self, rows: Sequence[ChainedRecord]) -> None: ...

    async def close(self) -> None: ...


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 §3.4.1 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %b" % (len(message), message)


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _token(settings: SinkSettings) -> str | None:
    if settings.token_env is None:
        return None
    value = os.environ.get(settings.token_env, "")
    if not value:
        raise ValueError(
            f"audit sink {settings.label!r}: environment variable {settings.token_env} is not set"
        )
    return value


class _Datagram(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: nobody listening
        _LOG.debug("syslog udp: %s", exc)


class SyslogUdpTransport:
    """One RFC 5424 message per datagram (RFC 5426); UDP cannot tell whether it arrived."""

    def __init__(self, host: str, port: int, hostname: str) -> None:
        self._address = (host, port)
        self._hostname = hostname
        self._transport: asyncio.DatagramTransport | None = None

    async def send(self, rows: Sequence[ChainedRecord]) -> None:
        if self._transport is None or self._transport.is_closing():
            loop = asyncio.get_running_loop()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    _Datagram, remote_addr=self._address
                )
            except OSError as exc:
                raise SinkError(f"udp {self._address[0]}:{self._address[1]}: {exc}") from exc
            self._transport = transport
        for row in rows:
            self._transport.sendto(syslog_line(row, self._hostname).encode()[:_MAX_DATAGRAM])

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class SyslogStreamTransport:
    """RFC 5424 over TCP or TLS with octet-counting framing, one long-lived connection."""

    def __init__(self, host: str, port: int, hostname: str, tls: ssl.SSLContext | None) -> None:
        self._host = host
        self._port = port
        self._hostname = hostname
        self._tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, rows: Sequence[ChainedRecord]) -> None:
        payload = b"".join(octet_frame(syslog_line(row, self._hostname).encode()) for row in rows)
        try:
            writer = await self._connected()
            writer.write(payload)
            await writer.drain()
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            await self.close()
            raise SinkError(f"syslog {self._host}:{self._port}: {exc}") from exc

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and self._reader is not None:
            if not self._reader.at_eof() and not self._writer.is_closing():
                return self._writer
            await self.close()  # the receiver hung up: reconnect rather than write into it
        self._reader, self._writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._tls,
            server_hostname=self._host if self._tls is not None else None,
        )
        return self._writer

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


class HttpTransport:
    """POSTs one batch per request (Splunk HEC, Elasticsearch bulk, OTLP/HTTP JSON)."""

    def __init__(self, settings: SinkSettings, hostname: str) -> None:
        self._settings = settings
        self._url = settings.url
        self._hostname = hostname
        self._index = settings.index
        self._session: aiohttp.ClientSession | None = None
        self._tls = _tls_context(settings.ca_file) if settings.ca_file else None
        token = _token(settings)
        headers = {"User-Agent": "dijk-audit"}
        if settings.type == "splunk-hec":
            headers["Content-Type"] = "application/json"
            if token:
                headers["Authorization"] = f"Splunk {token}"
        elif settings.type == "elastic-bulk":
            headers["Content-Type"] = "application/x-ndjson"
            if token:
                headers["Authorization"] = f"ApiKey {token}"
        else:
            headers["Content-Type"] = "application/json"
            if token:
                headers["Authorization"] = f"Bearer {token}"
        self._headers = headers

    def body(self, rows: Sequence[ChainedRecord]) -> bytes:
        kind = self._settings.type
        if kind == "splunk-hec":
            host = self._hostname
            return "\n".join(splunk_hec_line(row, host, self._index) for row in rows).encode()
        if kind == "elastic-bulk":
            index = self._index or DEFAULT_INDEX
            lines = [elastic_bulk_lines(row, index, with_id=True) for row in rows]
            return ("\n".join(lines) + "\n").encode()
        return orjson.dumps(otlp_request(rows))

    async def send(self, rows: Sequence[ChainedRecord]) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._tls) if self._tls else None
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
            )
        try:
            async with self._session.post(
                self._url, data=self.body(rows), headers=self._headers
            ) as response:
                status = response.status
                answer = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SinkError(f"{self._settings.label}: {type(exc).__name__}: {exc}") from exc
        if status in (400, 413):
            raise SinkRejectedError(f"{self._settings.label}: HTTP {status}: {answer[:200]!r}")
        if not 200 <= status < 300:
            raise SinkError(f"{self._settings.label}: HTTP {status}")
        if self._settings.type == "elastic-bulk":
            self._check_bulk(answer)

    def _check_bulk(self, answer: bytes) -> None:
        """Item errors: 409 means already indexed (a retry); 429/5xx retry the batch."""
        try:
            result: Any = orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise SinkError(f"{self._settings.label}: bulk answer is not JSON") from None
        if not isinstance(result, dict) or not result.get("errors"):
            return
        statuses = [
            next(iter(item.values())).get("status", 0)
            for item in result.get("items", [])
            if isinstance(item, dict) and item
        ]
        if any(status == 429 or status >= 500 for status in statuses):
            raise SinkError(f"{self._settings.label}: bulk items failed, retrying")
        rejected = [status for status in statuses if status >= 300 and status != 409]
        if rejected:
            raise SinkRejectedError(
                f"{self._settings.label}: {len(rejected)} documents rejected"
                f" (HTTP {sorted(set(rejected))})"
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def create_transport(settings: SinkSettings) -> Transport:
    hostname = settings.hostname or socket.gethostname()
    if settings.type != "syslog":
        return HttpTransport(settings, hostname)
    parts = urlsplit(settings.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 514
    if parts.scheme == "udp":
        return SyslogUdpTransport(host, port, hostname)
    tls = _tls_context(settings.ca_file) if parts.scheme == "tls" else None
    return SyslogStreamTransport(host, port, hostname, tls)


@dataclass(slots=True)
class ShipperStats:
    offered: int = 0
    sent: int = 0
    dropped: int = 0
    failures: int = 0


class Shipper:
    """Queues records for one sink and sends them from a task of its own."""

    def __init__(
        self, settings: SinkSettings, transport: Transport, retry_initial_s: float = 0.5
    ) -> None:
        self.settings = settings
        self.name = settings.label
        self.stats = ShipperStats()
        self._transport = transport
        self._queue: deque[ChainedRecord] = deque()
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._give_up_at = float("inf")
        self._retry_initial = retry_initial_s
        self._logged_at = 0.0
        self._sent = metrics.SINK_SENT.labels(self.name)
        self._dropped = metrics.SINK_DROPPED.labels(self.name)
        self._failed = metrics.SINK_FAILURES.labels(self.name)
        self._queued = metrics.SINK_QUEUE.labels(self.name)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, rows: Sequence[ChainedRecord]) -> None:
        """The writer's listener: queue ``rows``; never blocks, never raises."""
        if self._closing and self._task is None:
            self._drop(len(rows), "sink is closed")
            return
        was_empty = not self._queue
        self._queue.extend(rows)
        self.stats.offered += len(rows)
        overflow = len(self._queue) - self.settings.max_queue
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            self._drop(overflow, "queue full (sink down or too slow)")
        self._queued.set(len(self._queue))
        if was_empty or len(self._queue) >= self.settings.batch_size:
            self._wake.set()  # start the flush timer, or send a full batch now

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"dijk-audit-sink-{self.name}")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout_s``), then close the transport."""
        self._closing = True
        self._give_up_at = time.monotonic() + timeout_s
        self._wake.set()
        self._closed.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout_s + 1.0)
            except TimeoutError:
                _LOG.warning("audit sink %s: close timed out", self.name)
            except Exception:
                _LOG.exception("audit sink %s failed", self.name)
        if self._queue:
            self._drop(len(self._queue), "closing with records not delivered")
            self._queue.clear()
        self._queued.set(0)
        await self._transport.close()

    def _drop(self, count: int, why: str) -> None:
        self.stats.dropped += count
        self._dropped.inc(count)
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S or self._closing:
            self._logged_at = now
            _LOG.error(
                "audit sink %s: %d record copies dropped (%s; %d in all); the audit database"
                " keeps them: dijk audit export refills the SIEM",
                self.name,
                count,
                why,
                self.stats.dropped,
            )

    async def _run(self) -> None:
        interval = self.settings.flush_interval_ms / 1000
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._queue) < self.settings.batch_size and not self._closing:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
            size = min(len(self._queue), self.settings.batch_size)
            batch = [self._queue.popleft() for _ in range(size)]
            self._queued.set(len(self._queue))
            await self._deliver(batch)

    async def _deliver(self, batch: list[ChainedRecord]) -> None:
        delay = self._retry_initial
        while True:
            try:
                await asyncio.wait_for(self._transport.send(batch), self.settings.timeout_s)
            except SinkRejectedError as exc:
                self.stats.failures += 1
                self._failed.inc()
                _LOG.error("audit sink %s: batch rejected: %s", self.name, exc)
                self._drop(len(batch), "rejected by the receiver")
                return
            except (SinkError, TimeoutError, OSError) as exc:
                self.stats.failures += 1
                self._failed.inc()
                now = time.monotonic()
                if now - self._logged_at >= _LOG_EVERY_S:
                    self._logged_at = now
                    _LOG.warning(
                        "audit sink %s: send failed (%s); retrying in %.1f s",
                        self.name,
                        exc or type(exc).__name__,
                        delay,
                    )
                if now + delay > self._give_up_at:
                    self._drop(len(batch), "closing while the sink is down")
                    return
                await self._pause(delay)
                delay = min(delay * 2, self.settings.max_backoff_s)
                continue
            self.stats.sent += len(batch)
            self._sent.inc(len(batch))
            return

    async def _pause(self, seconds: float) -> None:
        """Back off, but wake early when closing (the shutdown deadline then applies)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)


def create_shipper(settings: SinkSettings) -> Shipper:
    """A shipper for ``settings`` (raises ``ValueError`` when its token is not set)."""
    return Shipper(settings, create_transport(settings))
