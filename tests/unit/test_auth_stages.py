"""How the authentication methods cooperate, authorization rules, key sources, mTLS binding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from dijk.auth.certificates import CertificateRing
from dijk.auth.jwks import JwksSource, parse_jwks
from dijk.auth.jwt import JwtVerifier, VerifiedToken
from dijk.auth.revocation import RevocationList
from dijk.config import ConfigError, load_config_text
from dijk.config.models import ApiKeyAuthConfig, ConsumerConfig, RouteConfig
from dijk.pipeline.context import Identity
from dijk.pipeline.pipeline import Pipeline
from dijk.pipeline.stage import DependencyUnavailable
from dijk.stages.authn_api_key import ApiKeyStage, KeyOwner, KeyRing, challenge
from dijk.stages.authn_jwt import JwtStage
from dijk.stages.authn_mtls import MtlsStage
from dijk.stages.authn_required import AuthnRequiredStage
from dijk.stages.authz import ScopeStage
from tests.unit.test_jwt_advisories import Issuer, context, verifier_for

KEY = "pk_test_0123456789abcdef"


def key_stage() -> ApiKeyStage:
    digest = hashlib.sha256(KEY.encode()).digest()
    ring = KeyRing({digest: KeyOwner("mobile", frozenset({"accounts:read"}), frozenset(), digest)})
    return ApiKeyStage(ApiKeyAuthConfig(), ring, RevocationList.from_url("memory://stages"))


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def pipeline(issuer: Issuer, *extra: Any) -> Pipeline:
    return Pipeline(
        [
            key_stage(),
            JwtStage(verifier_for(issuer.jwks()), RevocationList.from_url("memory://stages")),
            AuthnRequiredStage(
                [challenge(ApiKeyAuthConfig()), ("WWW-Authenticate", 'Bearer realm="dijk"')]
            ),
            *extra,
        ]
    )


async def test_either_method_is_enough(issuer: Issuer) -> None:
    chain = pipeline(issuer)
    by_key = context(x_api_key=KEY)
    assert await chain.request_headers(by_key) is None
    assert by_key.identity is not None
    assert by_key.identity.method == "api_key"
    by_token = context(issuer.token())
    assert await chain.request_headers(by_token) is None
    assert by_token.identity is not None
    assert by_token.identity.method == "jwt"


async def test_no_credential_is_401_with_a_challenge_per_method(issuer: Issuer) -> None:
    decision = await pipeline(issuer).request_headers(context())
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.missing_credentials")
    assert [value for _, value in decision.headers] == [
        'ApiKey realm="dijk", header="X-API-Key"',
        'Bearer realm="dijk"',
    ]


async def test_a_bad_key_is_refused_even_with_a_good_token(issuer: Issuer) -> None:
    decision = await pipeline(issuer).request_headers(context(issuer.token(), x_api_key="nope"))
    assert decision is not None
    assert decision.reason == "auth.invalid_key"


async def test_other_authorization_schemes_are_not_bearer_tokens(issuer: Issuer) -> None:
    ctx = context(authorization="Basic dXNlcjpwYXNz")
    decision = await pipeline(issuer).request_headers(ctx)
    assert decision is not None
    assert decision.reason == "auth.missing_credentials"


async def test_two_authorization_headers_are_refused(issuer: Issuer) -> None:
    ctx = context(issuer.token())
    ctx.headers.append(("authorization", "Bearer " + issuer.token()))
    decision = await pipeline(issuer).request_headers(ctx)
    assert decision is not None
    assert 'error="invalid_request"' in dict(decision.headers)["WWW-Authenticate"]


async def test_opaque_token_on_a_jwt_only_route_is_invalid(issuer: Issuer) -> None:
    decision = await pipeline(issuer).request_headers(context("opaque-token-value"))
    assert decision is not None
    assert decision.reason == "auth.invalid_token"


def _route(**fields: Any) -> RouteConfig:
    return RouteConfig(name="r", match={"path_prefix": "/"}, upstream="u", auth=["jwt"], **fields)


async def _authorize(route: RouteConfig, method: str, identity: Identity) -> str | None:
    ctx = context()
    ctx.method = method
    ctx.identity = identity
    decision = await ScopeStage(route).request_headers(ctx)
    return None if decision is None else decision.reason


async def test_scopes_by_method() -> None:
    route = _route(scopes_by_method={"get": ["accounts:read"], "POST": ["accounts:write"]})
    reader = Identity("r", "jwt", frozenset({"accounts:read"}))
    writer = Identity("w", "jwt", frozenset({"accounts:read", "accounts:write"}))
    assert await _authorize(route, "GET", reader) is None
    assert await _authorize(route, "POST", reader) == "authz.insufficient_scope"
    assert await _authorize(route, "POST", writer) is None
    assert await _authorize(route, "DELETE", reader) is None  # nothing required for DELETE


async def test_route_scopes_are_required_on_top_of_method_scopes() -> None:
    route = _route(scopes=["bank"], scopes_by_method={"POST": ["accounts:write"]})
    only_write = Identity("w", "jwt", frozenset({"accounts:write"}))
    assert await _authorize(route, "POST", only_write) == "authz.insufficient_scope"
    both = Identity("w", "jwt", frozenset({"accounts:write", "bank"}))
    assert await _authorize(route, "POST", both) is None


async def test_consumer_groups_any_of() -> None:
    route = _route(groups=["finance", "ops"])
    assert await _authorize(route, "GET", Identity("a", "jwt", groups=frozenset({"ops"}))) is None
    denied = await _authorize(route, "GET", Identity("b", "jwt", groups=frozenset({"sales"})))
    assert denied == "authz.group_not_allowed"


async def test_groups_come_from_the_configured_claim(issuer: Issuer) -> None:
    verifier = verifier_for(issuer.jwks(), groups_claim="roles")
    result = await verifier.verify(issuer.token(roles=["finance", 3]))
    assert isinstance(result, VerifiedToken)
    assert result.groups == frozenset({"finance"})


async def test_hot_tokens_are_verified_once(issuer: Issuer, monkeypatch: Any) -> None:
    verifier = verifier_for(issuer.jwks())
    token = issuer.token()
    calls = []
    keyset = await verifier.source.keys()
    key = keyset.find(issuer.rsa_kid, "RS256")
    assert key is not None
    original = type(key).verify

    def counting(self: Any, *args: Any) -> bool:
        calls.append(1)
        return bool(original(self, *args))

    monkeypatch.setattr(type(key), "verify", counting)
    for _ in range(5):
        assert isinstance(await verifier.verify(token), VerifiedToken)
    assert len(calls) == 1


async def test_cached_token_still_expires(issuer: Issuer) -> None:
    now = [time.time()]
    verifier = JwtVerifier(
        verifier_for(issuer.jwks()).rules,
        JwksSource(["RS256"], keys=parse_jwks(issuer.jwks(), ["RS256"])),
        clock=lambda: now[0],
    )
    token = issuer.token(exp=int(now[0]) + 60)
    assert isinstance(await verifier.verify(token), VerifiedToken)
    now[0] += 120
    result = await verifier.verify(token)
    assert not isinstance(result, VerifiedToken)
    assert result.reason == "auth.expired_token"


# ---- a JWKS fetched from a URL ---------------------------------------------------------------


class JwksServer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hits = 0
        self.delay_s = 0.0
        self.status = 200
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status == 302:
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        return web.json_response(self.document, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/jwks.json"


@pytest.fixture
async def jwks_server(issuer: Issuer) -> AsyncIterator[JwksServer]:
    server = JwksServer(issuer.jwks())
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


async def test_jwks_url_is_fetched_once_and_cached(issuer: Issuer, jwks_server: JwksServer) -> None:
    source = JwksSource(["RS256", "ES256"], url=jwks_server.url)
    verifier = JwtVerifier(verifier_for(issuer.jwks()).rules, source)
    for alg in ("RS256", "ES256", "RS256"):
        assert isinstance(await verifier.verify(issuer.token(alg)), VerifiedToken)
    assert jwks_server.hits == 1
    await source.close()


async def test_unknown_kid_refreshes_at_most_once_per_interval(
    issuer: Issuer, jwks_server: JwksServer
) -> None:
    source = JwksSource(["RS256"], url=jwks_server.url, refresh_interval_s=60)
    verifier = JwtVerifier(verifier_for(issuer.jwks()).rules, source)
    assert isinstance(await verifier.verify(issuer.token()), VerifiedToken)
    for index in range(10):
        result = await verifier.verify(issuer.token(headers={"kid": f"rotated-{index}"}))
        assert not isinstance(result, VerifiedToken)
    assert jwks_server.hits == 1  # the first fetch was under a second ago: no refresh yet
    await source.close()


async def test_new_kid_after_rotation_is_picked_up(jwks_server: JwksServer) -> None:
    first, rotated = Issuer(), Issuer(rsa_kid="rsa-2", ec_kid="ec-2")
    jwks_server.document = first.jwks()
    now = [1000.0]
    source = JwksSource(["RS256"], url=jwks_server.url, refresh_interval_s=30, clock=lambda: now[0])
    verifier = JwtVerifier(verifier_for(first.jwks()).rules, source)
    assert isinstance(await verifier.verify(first.token()), VerifiedToken)
    jwks_server.document = rotated.jwks()
    now[0] += 31
    assert isinstance(await verifier.verify(rotated.token()), VerifiedToken)
    assert jwks_server.hits == 2
    await source.close()


@pytest.mark.parametrize("problem", ["slow", "error", "redirect"])
async def test_jwks_outage_without_keys_is_a_503_dependency(
    issuer: Issuer, jwks_server: JwksServer, problem: str
) -> None:
    if problem == "slow":
        jwks_server.delay_s = 2
    elif problem == "error":
        jwks_server.status = 500
    else:
        jwks_server.status = 302
    source = JwksSource(["RS256"], url=jwks_server.url, timeout_s=0.3)
    verifier = JwtVerifier(verifier_for(issuer.jwks()).rules, source)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as raised:
        await verifier.verify(issuer.token())
    assert raised.value.reason == "auth.jwks_unavailable"
    assert time.monotonic() - started < 1.5
    await source.close()


# ---- client certificates -------------------------------------------------------------------


def _tls(fingerprint: str, subject: Any = (), san: Any = ()) -> dict[str, Any]:
    return {
        "client_cert_sha256": fingerprint,
        "client_cert": {"subject": subject, "subjectAltName": san},
    }


def test_certificate_ring_matches_fingerprint_san_and_subject() -> None:
    ring = CertificateRing(
        [
            ConsumerConfig(name="a", client_certificates=[{"sha256": "AB:" + "cd" * 31}]),
            ConsumerConfig(name="b", client_certificates=[{"san": "URI:spiffe://polder/pay"}]),
            ConsumerConfig(name="c", client_certificates=[{"subject": "CN=reports, O=Polder"}]),
            ConsumerConfig(name="d", client_certificates=[{"san": "DNS:Svc.Internal"}]),
        ]
    )
    found = ring.find(_tls("ab" + "cd" * 31))
    assert found is not None
    assert found.consumer == "a"
    found = ring.find(_tls("00" * 32, san=(("URI", "spiffe://polder/pay"),)))
    assert found is not None
    assert found.consumer == "b"
    subject = ((("organizationName", "Polder"),), (("commonName", "reports"),))
    found = ring.find(_tls("00" * 32, subject=subject))
    assert found is not None
    assert found.consumer == "c"
    found = ring.find(_tls("00" * 32, san=(("DNS", "svc.internal"),)))
    assert found is not None
    assert found.consumer == "d"
    extra = (*subject, (("organizationalUnitName", "x"),))
    assert ring.find(_tls("00" * 32, subject=extra)) is None  # the subject must be exact
    assert ring.find(_tls("00" * 32, san=(("URI", "spiffe://polder/other"),))) is None


async def test_mtls_stage_unknown_certificate_is_401() -> None:
    stage = MtlsStage(CertificateRing([]), None)
    ctx = context()
    ctx.tls = _tls("00" * 32)
    decision = await stage.request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.unknown_certificate")
    plain = context()
    assert await stage.request_headers(plain) is None  # no certificate: not this method


# ---- configuration checks ------------------------------------------------------------------


BASE = """
version: 1
upstreams: {u: {url: "http://127.0.0.1:1"}}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [jwt]}]",
            "auth.jwt is not configured",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [introspection]}]",
            "auth.introspection is not configured",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [mtls]}]",
            "client_ca_file",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, network: internal}]",
            "internal_networks",
        ),
        (
            "routes: [{name: r, match: {path: /, methods: [GET]}, upstream: u, auth: [api_key],"
            " scopes_by_method: {POST: [w]}}]\nauth: {api_key: {}}",
            "not among this route's match.methods",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {jwt: {jwks_url: 'http://idp.example/jwks', issuer: i, audience: a,"
            " algorithms: [RS256]}}",
            "https",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {jwt: {jwks_file: /nonexistent/jwks.json, issuer: i, audience: a,"
            " algorithms: [RS256]}}",
            "no such file",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {jwt: {jwks_file: x, issuer: i, audience: a, algorithms: [none]}}",
            "never accepted",
        ),
    ],
)
def test_configuration_mistakes_are_reported(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text(BASE + text, "dijk.yaml")
    assert message in str(raised.value), str(raised.value)


def test_unsafe_jwks_file_is_a_load_error(tmp_path: Any) -> None:
    from dijk.auth.resources import IdentityResources

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2hvcnQ", "alg": "HS256"}]}))
    config = load_config_text(
        BASE
        + "routes: [{name: r, match: {path: /}, upstream: u}]\n"
        + f"auth: {{jwt: {{jwks_file: '{path}', issuer: i, audience: a, algorithms: [HS256]}}}}",
        "dijk.yaml",
    )
    with pytest.raises(ConfigError, match="shorter than the hash"):
        IdentityResources.from_config(config, "dijk.yaml")
