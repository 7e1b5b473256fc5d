"""The scanner's HTTP client: bounded, paced, and careful with what it keeps.

Every request goes through :meth:`ScanClient.send`, which enforces the request budget
(when it is spent, :class:`BudgetExhausted` stops the scan's remaining checks — a budget
that runs out refuses, it never silently skips counting), the concurrency limit and the
rate (requests per second, except inside a deliberate burst). Exchanges keep the whole
response body in memory for the checks; :meth:`Exchange.evidence` is what a report may
show: truncated, with credentials, cookies and tokens redacted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from dijk.detect.masking import Masker, Strategy
from dijk.detect.pii import PiiDetector

__all__ = ["BudgetExhausted", "Exchange", "ScanClient", "TargetUnreachable", "redact"]

MAX_EVIDENCE_BODY = 2000
MAX_CONSECUTIVE_FAILURES = 5
MAX_MASKED_BODY = 64 * 1024  # evidence shows 2000 characters; mask a little more than that
MAX_READ_BYTES = 4 * 1024 * 1024
REDACTED = "[redacted]"
USER_AGENT = "dijk-scan"
_SECRET_HEADER = re.compile(
    r"authorization|cookie|api[-_]?key|token|secret|session|password|auth", re.I
)
_HEADER_LINE = re.compile(
    r"^((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token)"
    r":[ \t]*)\S[^\r\n]*",
    re.I | re.M,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SECRET_FIELD = re.compile(
    r'("(?:[a-z_]*(?:password|passwd|secret|token|api_?key|access_key|private_key|session)[a-z_]*)"\s*:\s*)"[^"]*"',
    re.I,
)


class BudgetExhausted(Exception):
    """The request budget is spent: no check may send more."""


class TargetUnreachable(Exception):
    """The target refused or dropped the connection, or did not answer in time."""


@dataclass(slots=True)
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float
    identity: str | None
    purpose: str
    json: Any = None
    secrets: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def evidence(self) -> dict[str, Any]:
        """The exchange as a report shows it: personal data masked (a report is a CI
        artifact, not a place for customers' data), credentials redacted, truncated."""
        request_body = self.request_body.decode("utf-8", errors="replace")[:MAX_MASKED_BODY]
        return {
            "request": {
                "method": self.method,
                "url": redact(self.url, self.secrets),
                "identity": self.identity or "(none)",
                "headers": _redact_headers(self.request_headers, self.secrets),
                "body": _truncate(redact(request_body, self.secrets)),
            },
            "response": {
                "status": self.status,
                "headers": _redact_headers(self.headers, self.secrets),
                "body": _truncate(redact(_masked(self), self.secrets)),
                "elapsed_ms": round(self.elapsed_s * 1000),
            },
        }


_pii: tuple[PiiDetector, Masker] | None = None


def _masked(exchange: Exchange) -> str:
    """The response body with personal data masked (``j***@example.nl``, ``****4300``)."""
    global _pii
    if _pii is None:
        _pii = (PiiDetector(region="NL"), Masker(strategy=Strategy.MASK))
    detector, masker = _pii
    if exchange.json is not None and len(exchange.body) <= MAX_MASKED_BODY:
        document = masker.mask_json(exchange.json, detector.scan_json(exchange.json))
        return orjson.dumps(document).decode()
    text = exchange.body[:MAX_MASKED_BODY].decode("utf-8", errors="replace")
    return masker.mask_text(text, detector.scan_text(text))


def _truncate(text: str) -> str:
    if len(text) <= MAX_EVIDENCE_BODY:
        return text
    return text[:MAX_EVIDENCE_BODY] + f"... [{len(text) - MAX_EVIDENCE_BODY} more characters]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _HEADER_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _JWT.sub(lambda m: m.group(0).split(".")[0] + "." + REDACTED, text)
    return _SECRET_FIELD.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)


def _redact_headers(headers: dict[str, str], secrets: Iterable[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if _SECRET_HEADER.search(name):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[name] = f"{scheme} {REDACTED}".strip() if scheme.isalpha() else REDACTED
        else:
            out[name] = redact(value, secrets)
    return out


class ScanClient:
    def __init__(
        self,
        target: str,
        *,
        budget: int,
        concurrency: int,
        rate: float,
        timeout_s: float,
        secrets: Iterable[str] = (),
    ) -> None:
        self.target = target.rstrip("/")
        self.budget = budget
        self.sent = 0
        self.secrets = tuple(secret for secret in secrets if secret)
        self._semaphore = asyncio.Semaphore(max(concurrency, 1))
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._pace = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 5))
        self._session: aiohttp.ClientSession | None = None
        self.exchanges: list[Exchange] = []
        self._failures = 0

    async def __aenter__(self) -> ScanClient:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        return self.target + path

    @property
    def remaining(self) -> int:
        return self.budget - self.sent

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        identity: str | None = None,
        purpose: str = "",
        paced: bool = True,
        timeout_s: float | None = None,
    ) -> Exchange:
        """Send one request; raises :class:`BudgetExhausted` or :class:`TargetUnreachable`."""
        if self.sent >= self.budget:
            raise BudgetExhausted
        self.sent += 1
        request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if body is not None:
            request_headers.setdefault("Content-Type", content_type or "application/json")
        async with self._semaphore:
            if paced:
                await self._wait_turn()
            assert self._session is not None
            url = self.url(path)
            started = time.monotonic()
            timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else None
            try:
                async with self._session.request(
                    method,
                    url,
                    headers=request_headers,
                    data=body,
                    allow_redirects=False,
                    timeout=timeout or self._timeout,
                ) as response:
                    raw = await response.content.read(MAX_READ_BYTES)
                    status = response.status
                    response_headers = {k: v for k, v in response.headers.items()}
            except aiohttp.InvalidURL as exc:
                raise TargetUnreachable(f"{method} {_origin(url)}: invalid URL: {exc}") from None
            except aiohttp.ClientConnectionError as exc:
                # One refused or dropped connection is an answer (a server may close on a
                # 2 MiB body); several in a row mean the target is gone.
                self._failures += 1
                if self._failures >= MAX_CONSECUTIVE_FAILURES or self.sent == 1:
                    raise TargetUnreachable(
                        f"{method} {_origin(url)}: {exc.__class__.__name__}: {exc}"
                    ) from None
                raw, status, response_headers = b"", 0, {}
            except TimeoutError:  # status 0: the timing checks need it; a hung target stops us
                self._failures += 1
                if self._failures >= MAX_CONSECUTIVE_FAILURES:
                    raise TargetUnreachable(
                        f"{method} {_origin(url)}: {MAX_CONSECUTIVE_FAILURES} answers in a row "
                        "timed out or failed"
                    ) from None
                raw, status, response_headers = b"", 0, {}
            else:
                self._failures = 0
            elapsed = time.monotonic() - started
        exchange = Exchange(
            method,
            url,
            request_headers,
            body or b"",
            status,
            response_headers,
            raw,
            elapsed,
            identity,
            purpose,
            secrets=self.secrets,
        )
        if "json" in (exchange.header("content-type") or "") and raw:
            try:
                exchange.json = orjson.loads(raw)
            except ValueError:
                exchange.json = None
        self.exchanges.append(exchange)
        return exchange

    async def _wait_turn(self) -> None:
        if not self._interval:
            return
        async with self._pace:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
