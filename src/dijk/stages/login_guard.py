"""Login protection against credential stuffing (priority 7100, before authentication).

Two limits on a login route:

- **attempts per client IP** (``ratelimit.login_ip``), checked on the request headers;
- **failed logins per username from any IP** (``ratelimit.login_account``), the seeds'
  low-and-slow case where every attempt comes from a different address. The username is
  read from the JSON or form body; whether a login failed is read from the upstream's
  status code.

Failures are counted exactly even under concurrency: each attempt *reserves* one unit of
the username's allowance before it is forwarded, and the unit is given back when the
upstream answers with anything but a failure status (or never answers). So a thousand
parallel guesses for one account admit at most ``account.limit`` of them. The username is
normalised (NFKC, case-folded, trimmed) and stored only as a digest.
"""

from __future__ import annotations

import contextlib
import unicodedata
from typing import ClassVar
from urllib.parse import parse_qs

import orjson

from dijk.config.models import LoginGuardConfig
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.ratelimit.algorithms import Algorithm
from dijk.ratelimit.backend import Bucket, Limiter
from dijk.ratelimit.errors import StorageErrorPolicy
from dijk.ratelimit.policy import client_network, digest, ratelimit_item
from dijk.storage import StorageUnavailable

_MAX_USERNAME = 256
_ANNOTATION = "login_guard"


class _Pending:
    """A reserved failure unit, waiting for the upstream's answer."""

    __slots__ = ("bucket", "settled", "token")

    def __init__(self, bucket: Bucket, token: int) -> None:
        self.bucket = bucket
        self.token = token
        self.settled = False


class LoginGuardStage(Stage):
    name: ClassVar[str] = "login_guard"
    priority: ClassVar[int] = 7100
    phases: ClassVar[frozenset[Phase]] = frozenset(
        {Phase.REQUEST_HEADERS, Phase.REQUEST_BODY, Phase.RESPONSE_HEADERS, Phase.LOG}
    )

    def __init__(
        self,
        config: LoginGuardConfig,
        route: str,
        key_prefix: str,
        limiter: Limiter,
        errors: StorageErrorPolicy,
    ) -> None:
        self._config = config
        self._field = config.username_field
        self._failures = frozenset(config.failure_statuses)
        self._limiter = limiter
        self._errors = errors
        scope = f"{key_prefix}login:{route}:"
        self._ip = config.ip
        self._account = config.account
        self._ip_prefix = scope + (f"ip:{config.ip.per_s:g}:" if config.ip else "")
        self._account_prefix = scope + (f"acct:{config.account.per_s:g}:" if config.account else "")
        items = []
        if config.ip is not None:
            items.append(f'"login-ip";q={config.ip.limit};w={_window(config.ip.per_s)}')
        if config.account is not None:
            items.append(
                f'"login-account";q={config.account.limit};w={_window(config.account.per_s)}'
            )
        self._policy = ", ".join(items)
        limiter.acquire()

    def wants_request_body(self, ctx: RequestContext) -> bool:
        # Whatever the method: an upstream that takes a login from a GET or DELETE with a
        # body must not get failed attempts for free (the gateway reads only bodies that
        # exist).
        return self._account is not None

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if self._policy:
            ctx.extra_response_headers.append(("ratelimit-policy", self._policy))
        limit = self._ip
        if limit is None:
            return None
        network = client_network(ctx.client_ip, 32, self._config.ipv6_prefix)
        bucket = Bucket(
            self._ip_prefix + network, Algorithm.SLIDING_WINDOW, limit.limit, limit.per_s * 1000
        )
        try:
            result = await self._limiter.hit([bucket])
        except StorageUnavailable as exc:
            return self._errors.handle(exc, ctx.request_id)
        outcome = result.outcomes[0]
        ctx.extra_response_headers.append(("ratelimit", ratelimit_item("login-ip", outcome)))
        if result.allowed:
            return None
        retry = _retry_s(outcome.retry_after_ms)
        return Decision.deny(
            429,
            "ratelimit.login_ip",
            f"Too many login attempts from this address: {limit.limit} per "
            f"{limit.per_s:g} s. Retry after {retry} s.",
            (("Retry-After", str(retry)),),
            retry_after_s=retry,
        )

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        limit = self._account
        if limit is None or not ctx.inspected_body:
            return None
        username = username_from_body(ctx.inspected_body or b"", ctx.content_type, self._field)
        if username is None:
            return None  # nothing to count against; the upstream refuses a login without one
        bucket = Bucket(
            self._account_prefix + digest(username),
            Algorithm.SLIDING_WINDOW,
            limit.limit,
            limit.per_s * 1000,
        )
        try:
            result = await self._limiter.hit([bucket])
        except StorageUnavailable as exc:
            return self._errors.handle(exc, ctx.request_id)
        outcome = result.outcomes[0]
        if not result.allowed:
            ctx.extra_response_headers.append(
                ("ratelimit", ratelimit_item("login-account", outcome))
            )
            retry = _retry_s(outcome.retry_after_ms)
            return Decision.deny(
                429,
                "ratelimit.login_account",
                f"Too many failed logins for this account: {limit.limit} per "
                f"{limit.per_s:g} s. Retry after {retry} s.",
                (("Retry-After", str(retry)),),
                retry_after_s=retry,
            )
        ctx.annotations[_ANNOTATION] = _Pending(bucket, outcome.token)
        return None

    async def response_headers(self, ctx: RequestContext) -> Decision | None:
        pending = ctx.annotations.get(_ANNOTATION)
        if isinstance(pending, _Pending):
            if ctx.response_status in self._failures:
                pending.settled = True  # a failed login: the reserved unit stays counted
            else:
                await self._give_back(pending)
        return None

    async def log(self, ctx: RequestContext) -> None:
        pending = ctx.annotations.get(_ANNOTATION)
        if isinstance(pending, _Pending) and not pending.settled:
            # The upstream never answered (refused later, upstream error, disconnect):
            # it was not a failed login, so give the unit back.
            await self._give_back(pending)

    async def _give_back(self, pending: _Pending) -> None:
        pending.settled = True
        # If the store is down the unit stays counted: errs on the side of limiting.
        with contextlib.suppress(StorageUnavailable):
            await self._limiter.refund(pending.bucket, pending.token)

    async def close(self) -> None:
        await self._limiter.release()


def _window(per_s: float) -> int:
    return max(1, round(per_s))


def _retry_s(milliseconds: int) -> int:
    return max(1, -(-milliseconds // 1000))


def normalise_username(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().casefold()


def username_from_body(body: bytes, content_type: str, field: str) -> str | None:
    """The normalised username of a JSON or form login body (also read by the abuse stages)."""
    media = content_type.split(";", 1)[0].strip().lower()
    value: object = None
    if media == "application/x-www-form-urlencoded":
        try:
            values = parse_qs(body.decode("utf-8"), max_num_fields=100).get(field)
        except (UnicodeDecodeError, ValueError):
            return None
        value = values[0] if values else None
    else:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(document, dict):
            value = document.get(field)
    if not isinstance(value, str) or not value.strip():
        return None
    return normalise_username(value[:_MAX_USERNAME])
