"""Several targets behind one upstream: choosing one, ejecting failing ones, retrying.

Built per configuration in :func:`build_balancer` (no event loop needed); per request the
gateway calls :meth:`Balancer.connect`, which picks a target, takes an idle keep-alive
connection from its pool or opens one, and — when opening fails (nothing was sent) — tries
another target, within the retry budget.

- **Choice**: ``round_robin`` is nginx's smooth weighted round robin (weights 5,1,1 give
  a a b a c a a, not a a a a a b c); ``least_connections`` takes the fewest connections in
  use per weight; ``consistent_hash`` places every target on a ring 100 x weight times and
  walks from the key's point to the first healthy one, so a target leaving moves only its
  own keys.
- **Passive health**: ``passive_health.failures`` failed connections in a row (refused,
  timed out, TLS refused) eject a target for ``eject_s``; one connection that opens resets
  the count. **Active health** (``proxy/health.py``) marks targets up and down beside it.
  A target is used when it is neither ejected nor down.
- **No healthy target**: 503 ``upstream.no_healthy_target`` at once, nothing is tried.
  Every tried target failed: the last failure's own 502 (``upstream.connect_failed``,
  ``upstream.connect_timeout``, ``upstream.tls_untrusted``, ``upstream.tls_failed``).
- **Retry budget**: each request earns ``budget_ratio`` of a retry (bounded); each retry
  spends one, beyond ``min_per_s`` free ones per second. A spent budget answers the
  failure: during an outage retries cannot double the load on the targets left.
"""

from __future__ import annotations

import bisect
import hashlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import structlog

from dijk.config.models import UpstreamConfig, UpstreamTlsConfig
from dijk.pipeline.context import RequestContext
from dijk.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool

log = structlog.get_logger("dijk.upstream")

_RING_POINTS = 100
_BUDGET_CAP = 100.0


@dataclass(slots=True, eq=False)
class Endpoint:
    """One target: its pool and health."""

    url: str
    weight: int
    pool: UpstreamPool
    failures: int = 0
    ejected_until: float = 0.0
    down: bool = False  # set by the active health check
    current: int = 0  # smooth weighted round robin

    @property
    def label(self) -> str:
        return self.url

    def usable(self, now: float) -> bool:
        return not self.down and now >= self.ejected_until


@dataclass(slots=True)
class _Budget:
    ratio: float
    min_per_s: float
    tokens: float = 10.0
    free_second: int = 0
    free_used: int = 0

    def earn(self) -> None:
        tokens = self.tokens + self.ratio
        self.tokens = tokens if tokens < _BUDGET_CAP else _BUDGET_CAP

    def spend(self, now: float) -> bool:
        second = int(now)
        if second != self.free_second:
            self.free_second, self.free_used = second, 0
        if self.free_used < self.min_per_s:
            self.free_used += 1
            return True
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True, eq=False)
class Balancer:
    name: str
    config: UpstreamConfig
    endpoints: list[Endpoint]
    _ring: list[tuple[int, Endpoint]] = field(default_factory=list)
    _ring_keys: list[int] = field(default_factory=list)
    _budget: _Budget | None = None
    _single: Endpoint | None = None

    def __post_init__(self) -> None:
        self._single = self.endpoints[0] if len(self.endpoints) == 1 else None
        retries = self.config.retries
        self._budget = _Budget(retries.budget_ratio, retries.min_per_s)
        if self.config.balance == "consistent_hash":
            ring = sorted(
                (_hash(f"{endpoint.url}#{point}"), endpoint)
                for endpoint in self.endpoints
                for point in range(_RING_POINTS * endpoint.weight)
            )
            self._ring = ring
            self._ring_keys = [point for point, _ in ring]

    @property
    def pool(self) -> UpstreamPool:
        """The first target's pool (the single-URL form has only that one)."""
        return self.endpoints[0].pool

    def take_idle(self) -> UpstreamConnection | None:
        """The single-URL form's lean path: an idle connection without a coroutine, when
        the one target is up; otherwise None and the caller awaits :meth:`connect`."""
        single = self._single
        if single is not None and not single.down:
            return single.pool.take_idle()
        return None

    async def connect(self, ctx: RequestContext) -> UpstreamConnection:
        """A connection to a healthy target, opened or kept alive; see the module docstring."""
        single = self._single
        if single is not None and not single.down:
            return await self._open(single)  # one target is never ejected: nowhere else to go
        budget = self._budget
        assert budget is not None
        budget.earn()
        tried: list[Endpoint] = []
        attempts = 1 + self.config.retries.attempts
        error: UpstreamError | None = None
        while len(tried) < attempts:
            now = time.monotonic()
            endpoint = self._pick(ctx, now, tried)
            if endpoint is None:
                break
            if tried and not budget.spend(now):
                log.warning("upstream_retry_budget_spent", upstream=self.name)
                break
            tried.append(endpoint)
            idle = endpoint.pool.take_idle()
            if idle is not None:
                return idle
            try:
                return await self._open(endpoint)
            except UpstreamError as exc:
                error = exc
        if error is not None:
            raise error
        raise UpstreamError(
            503,
            "upstream.no_healthy_target",
            f"No healthy target of upstream {self.name!r} can take the request.",
        )

    async def _open(self, endpoint: Endpoint) -> UpstreamConnection:
        try:
            connection = await endpoint.pool.connect()
        except UpstreamError as exc:
            if exc.reason != "upstream.pool_exhausted":
                self._failed(endpoint, exc)
            raise
        endpoint.failures = 0
        return connection

    def _failed(self, endpoint: Endpoint, error: UpstreamError) -> None:
        endpoint.failures += 1
        passive = self.config.passive_health
        if endpoint.failures >= passive.failures and len(self.endpoints) > 1:
            endpoint.ejected_until = time.monotonic() + passive.eject_s
            endpoint.failures = 0
            log.warning(
                "upstream_target_ejected",
                upstream=self.name,
                target=endpoint.url,
                reason=error.reason,
                seconds=passive.eject_s,
            )

    def _pick(self, ctx: RequestContext, now: float, tried: list[Endpoint]) -> Endpoint | None:
        candidates = [e for e in self.endpoints if e not in tried and e.usable(now)]
        if not candidates:
            return None
        mode = self.config.balance
        if mode == "least_connections":
            return min(
                candidates, key=lambda e: (len(e.pool.active) + e.pool.connecting) / e.weight
            )
        if mode == "consistent_hash":
            return self._on_ring(self._hash_key(ctx), candidates)
        total = 0
        best: Endpoint | None = None
        for endpoint in candidates:
            endpoint.current += endpoint.weight
            total += endpoint.weight
            if best is None or endpoint.current > best.current:
                best = endpoint
        assert best is not None
        best.current -= total
        return best

    def _hash_key(self, ctx: RequestContext) -> str:
        source = self.config.hash_on
        if source.startswith("header:"):
            wanted = source[7:].lower()
            for name, value in ctx.headers:
                if name == wanted:
                    return "h:" + value
        elif source.startswith("cookie:"):
            cookie = _cookie(ctx, source[7:])
            if cookie is not None:
                return "c:" + cookie
        return "ip:" + ctx.client_ip

    def _on_ring(self, key: str, candidates: list[Endpoint]) -> Endpoint:
        ring = self._ring
        start = bisect.bisect_left(self._ring_keys, _hash(key))
        allowed = set(map(id, candidates))
        for step in range(len(ring)):
            endpoint = ring[(start + step) % len(ring)][1]
            if id(endpoint) in allowed:
                return endpoint
        return candidates[0]

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.pool.close()


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _cookie(ctx: RequestContext, name: str) -> str | None:
    for header, value in ctx.headers:
        if header != "cookie":
            continue
        for part in value.split(";"):
            key, _, found = part.strip().partition("=")
            if key == name:
                return found
    return None


def client_tls_context(tls: UpstreamTlsConfig) -> ssl.SSLContext:
    """Verification on unless switched off; TLS 1.2 at least; the client certificate if set.

    Blocking file reads: called while a configuration is built, never per request.
    """
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def build_balancer(name: str, config: UpstreamConfig) -> Balancer:
    """The upstream's targets and pools (``OSError``/``ssl.SSLError`` for unreadable TLS
    files, reported by the caller as configuration errors)."""
    context: ssl.SSLContext | None = None
    endpoints = []
    for target in config.target_list:
        parts = urlsplit(target.url)
        secure = parts.scheme == "https"
        if secure and context is None:
            context = client_tls_context(config.tls)
        pool = UpstreamPool(
            parts.hostname or "127.0.0.1",
            parts.port or (443 if secure else 80),
            connect_timeout=config.connect_timeout_s,
            read_timeout=config.read_timeout_s,
            max_idle=config.max_idle_connections,
            ssl_context=context if secure else None,
            server_hostname=(config.tls.server_name or parts.hostname) if secure else None,
            max_connections=config.max_connections,
        )
        endpoints.append(Endpoint(target.url, target.weight, pool))
    return Balancer(name, config, endpoints)
