"""Posting alerts to a JSON webhook: bounded queue, retries with backoff, never blocking.

With ``secret_env`` each POST carries ``X-Dijk-Signature: sha256=<hex>``, the HMAC-SHA256
of the exact body under that secret, so the receiver can tell a real alert from a forged
one (the scheme GitHub webhooks use).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import time
from collections import deque
from typing import Any, Final, Protocol

import aiohttp
import orjson
import structlog

from dijk.alerts.settings import WebhookSettings
from dijk.audit import metrics

__all__ = ["SIGNATURE_HEADER", "Payload", "WebhookPoster", "signature"]

_LOG: Final = structlog.get_logger("dijk.alerts")
SIGNATURE_HEADER: Final = "X-Dijk-Signature"


class Payload(Protocol):
    """Anything posted: an alert rule's :class:`Alert`, or another event (abuse incident)."""

    @property
    def rule(self) -> str: ...

    def payload(self) -> dict[str, Any]: ...


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookPoster:
    def __init__(self, settings: WebhookSettings, retry_initial_s: float = 0.5) -> None:
        self.settings = settings
        secret = os.environ.get(settings.secret_env, "") if settings.secret_env else ""
        if settings.secret_env and not secret:
            raise ValueError(
                f"alerts.webhook: environment variable {settings.secret_env} is not set"
            )
        self._secret = secret.encode() if secret else None
        self._queue: deque[Payload] = deque()
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._give_up_at = float("inf")
        self._retry_initial = retry_initial_s
        self.sent = 0
        self.dropped = 0

    def post(self, alert: Payload) -> None:
        """Queue ``alert`` for delivery; never blocks."""
        if len(self._queue) >= self.settings.max_queue:
            self._queue.popleft()
            self.dropped += 1
            metrics.ALERT_WEBHOOK.labels("dropped").inc()
            _LOG.error("alert webhook: queue full, oldest alert dropped")
        self._queue.append(alert)
        self._wake.set()
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dijk-alerts")

    async def close(self, timeout_s: float = 5.0) -> None:
        self._closing = True
        self._give_up_at = time.monotonic() + timeout_s
        self._wake.set()
        self._closed.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, timeout_s + 1.0)
        if self._queue:
            self.dropped += len(self._queue)
            metrics.ALERT_WEBHOOK.labels("dropped").inc(len(self._queue))
            _LOG.error("alert webhook: %d alerts not delivered at shutdown", len(self._queue))
            self._queue.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            alert = self._queue[0]
            if await self._deliver(alert):
                self._queue.popleft()
            elif self._closing and time.monotonic() >= self._give_up_at:
                return

    async def _deliver(self, alert: Payload) -> bool:
        body = orjson.dumps(alert.payload())
        headers = {"Content-Type": "application/json", "User-Agent": "dijk-alerts"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        delay = self._retry_initial
        while True:
            try:
                if self._session is None:
                    self._session = aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
                    )
                async with self._session.post(self.settings.url, data=body, headers=headers) as r:
                    status = r.status
                    await r.read()
                if 200 <= status < 300:
                    self.sent += 1
                    metrics.ALERT_WEBHOOK.labels("sent").inc()
                    return True
                error = f"HTTP {status}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            metrics.ALERT_WEBHOOK.labels("failed").inc()
            _LOG.warning("alert webhook: %s; retrying in %.1f s", error, delay)
            if time.monotonic() + delay > self._give_up_at:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
            delay = min(delay * 2, self.settings.max_backoff_s)
