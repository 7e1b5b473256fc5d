"""OAuth2 token introspection (RFC 7662) against a real authorization server on loopback.

The server is a small aiohttp application started by these tests in a background thread:
it checks Dijk's client authentication, knows a few tokens, counts calls, and can be made
slow or stopped to test outages. Through the stage (caches, outage → 503, on_unavailable:
allow) and through a real gateway process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp import web

from dijk.auth import AuthFailure
from dijk.auth.introspection import ActiveToken, IntrospectionUnavailable, Introspector
from dijk.auth.revocation import RevocationList, credential_for_token
from dijk.config.models import IntrospectionAuthConfig
from dijk.pipeline.pipeline import Pipeline
from dijk.stages.authn_introspection import IntrospectionStage
from dijk.stages.authn_required import AuthnRequiredStage
from tests.e2e.test_auth_e2e import call
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream
from tests.unit.test_jwt_advisories import context

CLIENT_ID = "dijk-gateway"
CLIENT_SECRET = "s3cret+with/odd=chars"


@dataclass
class AuthorizationServer:
    """Tokens it knows, and knobs for the tests."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)
    delay_s: float = 0.0
    status: int = 200
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/introspect"

    async def _introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret = "", ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        else:
            client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        self.calls.append({"token": str(form.get("token", "")), "client": client_id})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        answer = self.tokens.get(str(form.get("token", "")), {"active": False})
        return web.json_response(answer)

    def start(self) -> AuthorizationServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/introspect", self._introspect)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def grant(self, token: str, **answer: Any) -> None:
        now = int(time.time())
        document: dict[str, Any] = {
            "active": True,
            "client_id": "mobile-app",
            "sub": "alice",
            "scope": "accounts:read",
            "exp": now + 600,
            "iat": now,
            "iss": "https://idp.polder.test",
        }
        document.update(answer)
        self.tokens[token] = document


@pytest.fixture
def server() -> Iterator[AuthorizationServer]:
    running = AuthorizationServer().start()
    yield running
    running.stop()


def settings(server: AuthorizationServer, **overrides: Any) -> IntrospectionAuthConfig:
    values: dict[str, Any] = {
        "url": server.url,
        "client_id": CLIENT_ID,
        "client_secret_env": "TEST_INTROSPECTION_SECRET",
        "timeout_s": 0.5,
    }
    values.update(overrides)
    return IntrospectionAuthConfig(**values)


def stage_for(
    server: AuthorizationServer, clock: Callable[[], float] = time.time, **overrides: Any
) -> tuple[IntrospectionStage, Introspector]:
    introspector = Introspector(settings(server, **overrides), CLIENT_SECRET, clock=clock)
    return IntrospectionStage(introspector, RevocationList.from_url("memory://intro")), introspector


async def test_active_token_becomes_an_identity(server: AuthorizationServer) -> None:
    server.grant("opaque-1", scope="accounts:read accounts:write")
    stage, _ = stage_for(server)
    ctx = context("opaque-1")
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "introspection:mobile-app"  # unlinked: namespaced
    assert ctx.identity.method == "introspection"
    assert ctx.identity.scopes == frozenset({"accounts:read", "accounts:write"})
    assert ctx.identity.credential_id.startswith("tok:")
    assert "opaque-1" not in ctx.identity.credential_id
    assert server.calls == [{"token": "opaque-1", "client": CLIENT_ID}]


async def test_client_secret_post_authenticates_too(server: AuthorizationServer) -> None:
    server.grant("opaque-post")
    stage, _ = stage_for(server, client_auth="client_secret_post")
    assert await stage.request_headers(context("opaque-post")) is None


async def test_inactive_token_is_refused_with_invalid_token(server: AuthorizationServer) -> None:
    stage, _ = stage_for(server)
    decision = await stage.request_headers(context("unknown-token"))
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_token")
    assert 'error="invalid_token"' in dict(decision.headers)["WWW-Authenticate"]


async def test_expired_answer_is_refused(server: AuthorizationServer) -> None:
    server.grant("old", exp=int(time.time()) - 5)
    stage, _ = stage_for(server)
    decision = await stage.request_headers(context("old"))
    assert decision is not None
    assert decision.reason == "auth.expired_token"


async def test_positive_answers_are_cached_until_min_of_exp_and_ttl(
    server: AuthorizationServer,
) -> None:
    now = [time.time()]
    server.grant("hot", exp=int(now[0]) + 20)
    stage, introspector = stage_for(server, clock=lambda: now[0], cache_ttl_s=60)
    for _ in range(5):
        assert await stage.request_headers(context("hot")) is None
    assert len(server.calls) == 1
    now[0] += 25  # past exp (20 s), before the ttl (60 s): asked again, now expired
    server.tokens["hot"]["active"] = False
    decision = await stage.request_headers(context("hot"))
    assert decision is not None
    assert len(server.calls) == 2
    assert introspector.calls == 2


async def test_positive_cache_is_bounded_by_ttl(server: AuthorizationServer) -> None:
    now = [time.time()]
    server.grant("long", exp=int(now[0]) + 3600)
    stage, _ = stage_for(server, clock=lambda: now[0], cache_ttl_s=10)
    assert await stage.request_headers(context("long")) is None
    now[0] += 11
    assert await stage.request_headers(context("long")) is None
    assert len(server.calls) == 2


async def test_negative_answers_are_cached_briefly(server: AuthorizationServer) -> None:
    now = [time.time()]
    stage, _ = stage_for(server, clock=lambda: now[0], negative_cache_s=5)
    for _ in range(10):
        assert await stage.request_headers(context("bad")) is not None
    assert len(server.calls) == 1
    now[0] += 6
    assert await stage.request_headers(context("bad")) is not None
    assert len(server.calls) == 2


async def test_concurrent_requests_share_one_call(server: AuthorizationServer) -> None:
    server.grant("shared")
    server.delay_s = 0.1
    stage, _ = stage_for(server)
    results = await asyncio.gather(*(stage.request_headers(context("shared")) for _ in range(20)))
    assert results == [None] * 20
    assert len(server.calls) == 1


async def test_outage_fails_closed_with_503(server: AuthorizationServer) -> None:
    server.grant("during-outage")
    stage, _ = stage_for(server)
    server.stop()
    pipeline = Pipeline([stage, AuthnRequiredStage([])])
    started = time.monotonic()
    decision = await pipeline.request_headers(context("during-outage"))
    assert time.monotonic() - started < 2
    assert decision is not None
    assert (decision.status, decision.reason) == (503, "auth.introspection_unavailable")
    assert "during-outage" not in decision.detail


async def test_slow_endpoint_fails_closed_with_503(server: AuthorizationServer) -> None:
    server.grant("slow-token")
    server.delay_s = 2.0
    stage, _ = stage_for(server, timeout_s=0.3)
    pipeline = Pipeline([stage])
    started = time.monotonic()
    decision = await pipeline.request_headers(context("slow-token"))
    assert time.monotonic() - started < 1.5
    assert decision is not None
    assert decision.reason == "auth.introspection_unavailable"


async def test_endpoint_errors_count_as_unavailable(server: AuthorizationServer) -> None:
    server.status = 500
    stage, _ = stage_for(server)
    with pytest.raises(IntrospectionUnavailable):
        await stage.request_headers(context("anything"))
    server.status = 200
    wrong_secret = Introspector(settings(server), "not-the-secret")
    with pytest.raises(IntrospectionUnavailable):
        await wrong_secret.introspect("anything")


async def test_on_unavailable_allow_lets_through_unverified_without_scopes(
    server: AuthorizationServer,
) -> None:
    stage, _ = stage_for(server, on_unavailable="allow")
    server.stop()
    ctx = context("while-down")
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "unverified"
    assert ctx.identity.scopes == frozenset()
    assert ctx.annotations["auth_unverified"] is True


async def test_revoked_opaque_token_is_refused_without_asking(
    server: AuthorizationServer,
) -> None:
    server.grant("to-revoke")
    stage, _ = stage_for(server)
    await RevocationList.from_url("memory://intro").revoke_credential(
        credential_for_token("to-revoke")
    )
    decision = await stage.request_headers(context("to-revoke"))
    assert decision is not None
    assert decision.reason == "auth.token_revoked"
    assert server.calls == []


async def test_audience_and_issuer_rules(server: AuthorizationServer) -> None:
    server.grant("aud-ok", aud=["dijk-api"])
    server.grant("aud-wrong", aud="other")
    introspector = Introspector(
        settings(server, audience="dijk-api", issuer="https://idp.polder.test"), CLIENT_SECRET
    )
    assert isinstance(await introspector.introspect("aud-ok"), ActiveToken)
    result = await introspector.introspect("aud-wrong")
    assert isinstance(result, AuthFailure)


async def test_oversize_token_is_not_sent(server: AuthorizationServer) -> None:
    introspector = Introspector(settings(server, max_token_bytes=64), CLIENT_SECRET)
    result = await introspector.introspect("x" * 65)
    assert isinstance(result, AuthFailure)
    assert server.calls == []


def test_gateway_process_uses_introspection_and_fails_closed(
    server: AuthorizationServer, upstream: RecordingUpstream, tmp_path: Any
) -> None:
    server.grant("gw-token", scope="accounts:read")
    server.grant("gw-noscope", scope="profile")
    config = base_config(
        upstream.port,
        auth={
            "introspection": {
                "url": server.url,
                "client_id": CLIENT_ID,
                "client_secret_env": "GW_INTROSPECTION_SECRET",
                "timeout_s": 0.5,
            }
        },
        routes=[
            {
                "name": "accounts",
                "match": {"path_prefix": "/api"},
                "upstream": "echo",
                "auth": ["introspection"],
                "scopes": ["accounts:read"],
            }
        ],
    )
    gateway = GatewayProcess(config, tmp_path, {"GW_INTROSPECTION_SECRET": CLIENT_SECRET})
    gateway.start()
    try:
        url = gateway.url + "/api/x"
        assert call(url, headers={"Authorization": "Bearer gw-token"})[0] == 200
        assert call(url, headers={"Authorization": "Bearer gw-noscope"})[0] == 403
        status, headers, body = call(url, headers={"Authorization": "Bearer nope"})
        assert status == 401
        assert 'error="invalid_token"' in headers["www-authenticate"]
        server.stop()
        status, headers, body = call(url, headers={"Authorization": "Bearer fresh-token"})
        assert status == 503
        assert json.loads(body)["reason"] == "auth.introspection_unavailable"
        assert "retry-after" in headers
        # the cached positive answer still serves while the server is down
        assert call(url, headers={"Authorization": "Bearer gw-token"})[0] == 200
    finally:
        gateway.stop()
    assert CLIENT_SECRET not in gateway.logs()
    assert "gw-token" not in gateway.logs()
