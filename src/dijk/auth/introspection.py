"""OAuth2 token introspection (RFC 7662) with client authentication and bounded caches.

An opaque token is sent to the authorization server's introspection endpoint, with Dijk's
own client credentials (``client_secret_basic`` or ``client_secret_post``, RFC 6749
§2.3.1). Answers are cached by the token's SHA-256 (never the token itself):

- ``active: true`` until ``min(exp, now + cache_ttl_s)``, so a revoked token lives on at
  most ``cache_ttl_s`` here (revoke it at Dijk too for immediate effect);
- ``active: false`` for ``negative_cache_s``, so a flood of bad tokens does not become a
  flood at the authorization server.

Concurrent requests with the same token share one call. An endpoint that is down, slow
(``timeout_s``), answers non-200 or nonsense is *unavailable*: the caller decides (fail
closed by default, 503 ``auth.introspection_unavailable``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson
import structlog

from dijk.auth import AuthFailure
from dijk.auth.consumers import INTROSPECTION, TokenConsumers
from dijk.auth.jwt import as_time, groups_from, scopes_from
from dijk.config.models import IntrospectionAuthConfig
from dijk.pipeline.stage import DependencyUnavailable

log = structlog.get_logger("dijk.auth.introspection")

MAX_ANSWER_BYTES = 64 * 1024

INACTIVE = AuthFailure("auth.invalid_token", "The token is not active.")
TOO_LARGE = AuthFailure("auth.invalid_token", "The token is too large.")
EXPIRED = AuthFailure("auth.expired_token", "The token has expired.")
NOT_YET_VALID = AuthFailure("auth.token_not_yet_valid", "The token is not valid yet.")
WRONG_ISSUER = AuthFailure("auth.invalid_token", "The token was issued by another issuer.")
WRONG_AUDIENCE = AuthFailure("auth.invalid_token", "The token is meant for another audience.")
NO_CONSUMER = AuthFailure("auth.invalid_token", "The token does not name its client.")


class IntrospectionUnavailable(DependencyUnavailable):
    """The endpoint did not give a usable answer in time."""

    def __init__(self, why: str) -> None:
        super().__init__(
            "auth.introspection_unavailable",
            "The token cannot be checked right now; try again shortly.",
        )
        self.why = why


@dataclass(frozen=True, slots=True)
class ActiveToken:
    consumer: str
    scopes: frozenset[str]
    groups: frozenset[str]
    credential_id: str
    expires: float | None
    claims: dict[str, Any] = field(default_factory=dict)


class Introspector:
    """One client for one endpoint; shared by every route that accepts ``introspection``.

    ``consumers`` links answers' ``consumer_claim`` values to configured consumers (see
    :mod:`dijk.auth.consumers`); an :class:`ActiveToken` still reports the raw value.
    """

    def __init__(
        self,
        config: IntrospectionAuthConfig,
        client_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        consumers: TokenConsumers | None = None,
    ) -> None:
        self.config = config
        self.consumers = consumers if consumers is not None else TokenConsumers(INTROSPECTION)
        self._secret = client_secret
        self._clock = clock
        self._positive: OrderedDict[bytes, tuple[ActiveToken, float]] = OrderedDict()
        self._negative: OrderedDict[bytes, tuple[AuthFailure, float]] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[ActiveToken | AuthFailure]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._users = 0
        self.calls = 0
        audience = config.audience
        self._audiences = (
            None
            if audience is None
            else frozenset([audience] if isinstance(audience, str) else audience)
        )

    def attach(self) -> None:
        self._users += 1

    async def detach(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._session is not None:
            await self._session.close()
            self._session = None

    async def introspect(self, token: str) -> ActiveToken | AuthFailure:
        """The token's standing; raises :class:`IntrospectionUnavailable` when unknowable."""
        if len(token) > self.config.max_token_bytes:
            return TOO_LARGE
        digest = hashlib.sha256(token.encode("latin-1")).digest()
        now = self._clock()
        cached = self._lookup(digest, now)
        if cached is not None:
            return cached
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ActiveToken | AuthFailure] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[digest] = future
        try:
            result = await self._ask(token, digest)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            self._pending.pop(digest, None)
        future.set_result(result)
        return result

    def _lookup(self, digest: bytes, now: float) -> ActiveToken | AuthFailure | None:
        positive = self._positive.get(digest)
        if positive is not None:
            if positive[1] > now:
                return positive[0]
            del self._positive[digest]
        negative = self._negative.get(digest)
        if negative is not None:
            if negative[1] > now:
                return negative[0]
            del self._negative[digest]
        return None

    async def _ask(self, token: str, digest: bytes) -> ActiveToken | AuthFailure:
        answer = await self._call(token)
        now = self._clock()
        result = self._judge(answer, digest, now)
        if isinstance(result, ActiveToken):
            until = now + self.config.cache_ttl_s
            if result.expires is not None:
                until = min(until, result.expires)
            self._store(self._positive, digest, (result, until))
        elif self.config.negative_cache_s > 0:
            self._store(self._negative, digest, (result, now + self.config.negative_cache_s))
        return result

    def _store(self, cache: OrderedDict[bytes, Any], digest: bytes, entry: Any) -> None:
        if self.config.cache_size <= 0:
            return
        cache[digest] = entry
        cache.move_to_end(digest)
        while len(cache) > self.config.cache_size:
            cache.popitem(last=False)

    def _judge(
        self, answer: dict[str, Any], digest: bytes, now: float
    ) -> ActiveToken | AuthFailure:
        if answer.get("active") is not True:
            return INACTIVE
        expires = as_time(answer.get("exp"))
        if expires is None and answer.get("exp") is not None:
            return INACTIVE
        if expires is not None and expires <= now:
            return EXPIRED
        not_before = as_time(answer.get("nbf"))
        if not_before is not None and not_before > now:
            return NOT_YET_VALID
        if self.config.issuer is not None and answer.get("iss") != self.config.issuer:
            return WRONG_ISSUER
        if self._audiences is not None:
            audience = answer.get("aud")
            if isinstance(audience, str):
                audience = [audience]
            if not isinstance(audience, list) or not any(
                isinstance(aud, str) and aud in self._audiences for aud in audience
            ):
                return WRONG_AUDIENCE
        consumer = answer.get(self.config.consumer_claim)
        if not isinstance(consumer, str) or not consumer or len(consumer) > 256:
            return NO_CONSUMER
        return ActiveToken(
            consumer=consumer,
            scopes=scopes_from(answer),
            groups=groups_from(answer, self.config.groups_claim),
            credential_id="tok:" + digest[:8].hex(),
            expires=expires,
            claims=answer,
        )

    async def _call(self, token: str) -> dict[str, Any]:
        config = self.config
        form = {"token": token, "token_type_hint": "access_token"}
        headers: dict[str, str] = {}
        if config.client_auth == "client_secret_basic":
            # RFC 6749 §2.3.1: form-encode id and secret, then HTTP Basic.
            pair = f"{quote_plus(config.client_id)}:{quote_plus(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = config.client_id
            form["client_secret"] = self._secret
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=config.timeout_s),
                headers={"Accept": "application/json"},
            )
        self.calls += 1
        try:
            async with self._session.post(
                config.url, data=form, headers=headers, allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise IntrospectionUnavailable(f"HTTP {response.status}")
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("introspection_unavailable", url=config.url, error=type(error).__name__)
            raise IntrospectionUnavailable(type(error).__name__) from None
        except IntrospectionUnavailable as error:
            log.warning("introspection_unavailable", url=config.url, error=error.why)
            raise
        if len(body) > MAX_ANSWER_BYTES:
            raise IntrospectionUnavailable("answer too large")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("introspection_unavailable", url=config.url, error="not JSON")
            raise IntrospectionUnavailable("not JSON") from None
        if not isinstance(answer, dict):
            raise IntrospectionUnavailable("not a JSON object")
        return answer
