"""How the authentication methods cooperate, authorization rules, key sources, mTLS binding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from dijk.auth.certificates import CertificateRing
from dijk.auth.consumers import TokenConsumers
from dijk.auth.credentials import query_values, without_param
from dijk.auth.introspection import ActiveToken, IntrospectionUnavailable, Introspector
from dijk.auth.jwks import JwksSource, parse_jwks
from dijk.auth.jwt import JwtVerifier, VerifiedToken, scopes_from
from dijk.auth.resources import IdentityResources
from dijk.auth.revocation import RevocationList
from dijk.config import ConfigError, load_config_text
from dijk.config.models import (
    ApiKeyAuthConfig,
    ConsumerConfig,
    DijkConfig,
    IntrospectionAuthConfig,
    RouteConfig,
)
from dijk.pipeline.context import Identity
from dijk.pipeline.pipeline import Pipeline
from dijk.pipeline.stage import DependencyUnavailable
from dijk.routing.router import CompiledRoute
from dijk.stages import StageResources, identity_stages, protection_stages
from dijk.stages.authn_api_key import ApiKeyStage, KeyOwner, KeyRing, challenge
from dijk.stages.authn_introspection import IntrospectionStage
from dijk.stages.authn_jwt import JwtStage
from dijk.stages.authn_mtls import MtlsStage
from dijk.stages.authn_required import AuthnRequiredStage
from dijk.stages.authz import ScopeStage
from tests.unit.test_jwt_advisories import AUDIENCE, ISSUER, Issuer, context, verifier_for

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
    fields.setdefault("match", {"path_prefix": "/"})
    return RouteConfig(name="r", upstream="u", auth=["jwt"], **fields)


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


async def test_advisory_head_needs_the_get_scopes() -> None:
    route = _route(
        match={"path_prefix": "/api", "methods": ["GET", "POST"]},
        scopes_by_method={"GET": ["accounts:read"], "POST": ["accounts:write"]},
    )
    writer_only = Identity("w", "api_key", frozenset({"accounts:write"}))
    reader = Identity("r", "api_key", frozenset({"accounts:read"}))
    assert await _authorize(route, "GET", writer_only) == "authz.insufficient_scope"
    assert await _authorize(route, "HEAD", writer_only) == "authz.insufficient_scope"
    assert await _authorize(route, "HEAD", reader) is None


async def test_head_needs_its_own_scopes_on_top_of_the_get_scopes() -> None:
    route = _route(scopes_by_method={"GET": ["accounts:read"], "HEAD": ["accounts:probe"]})
    reader = Identity("r", "api_key", frozenset({"accounts:read"}))
    both = Identity("b", "api_key", frozenset({"accounts:read", "accounts:probe"}))
    assert await _authorize(route, "HEAD", reader) == "authz.insufficient_scope"
    assert await _authorize(route, "HEAD", both) is None
    assert await _authorize(route, "GET", reader) is None


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
            "routes: [{name: r, match: {path: /, methods: [POST]}, upstream: u, auth: [api_key],"
            " scopes_by_method: {HEAD: [w]}}]\nauth: {api_key: {}}",
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


def test_head_scopes_are_accepted_where_get_routes_head() -> None:
    text = (
        "routes: [{name: r, match: {path: /, methods: [GET]}, upstream: u, auth: [api_key],"
        " scopes_by_method: {GET: [r], HEAD: [h]}}]\nauth: {api_key: {}}"
    )
    config = load_config_text(BASE + text, "dijk.yaml")
    assert config.routes[0].scopes_by_method == {"GET": ["r"], "HEAD": ["h"]}


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


# ---- hide_credentials: the credential stops at the gateway ------------------------------------


def _on_route(ctx: Any, *, hide: bool, auth: tuple[str, ...] = ("api_key", "jwt")) -> Any:
    route = RouteConfig(
        name="r", match={"path_prefix": "/"}, upstream="u", auth=list(auth), hide_credentials=hide
    )
    ctx.route = CompiledRoute(name="r", config=route, methods=None, kind="prefix", order=0)
    return ctx


def query_key_stage() -> ApiKeyStage:
    digest = hashlib.sha256(KEY.encode()).digest()
    ring = KeyRing({digest: KeyOwner("mobile", frozenset({"accounts:read"}), frozenset(), digest)})
    return ApiKeyStage(ApiKeyAuthConfig(query_param="api_key"), ring, None)


def fake_introspector(
    answer: ActiveToken | IntrospectionUnavailable, on_unavailable: str = "deny"
) -> Introspector:
    settings = IntrospectionAuthConfig(
        url="http://127.0.0.1:1/introspect",
        client_id="dijk",
        client_secret_env="UNUSED_SECRET",
        on_unavailable=on_unavailable,  # type: ignore[arg-type]
    )
    introspector = Introspector(settings, "secret")

    async def introspect(token: str) -> ActiveToken:
        if isinstance(answer, IntrospectionUnavailable):
            raise answer
        return answer

    introspector.introspect = introspect  # type: ignore[method-assign]
    return introspector


ACTIVE = ActiveToken("svc", frozenset({"accounts:read"}), frozenset(), "tok:0123456789abcdef", None)


async def test_hide_credentials_removes_the_api_key_header_and_keeps_the_rest() -> None:
    ctx = _on_route(context(x_api_key=KEY, x_trace="t1", accept="*/*"), hide=True)
    server_list = ctx.headers
    assert await key_stage().request_headers(ctx) is None
    assert ctx.identity is not None
    assert (ctx.identity.consumer, ctx.identity.method) == ("mobile", "api_key")
    assert ctx.identity.credential_id.startswith("key:")  # the audit log still knows the key
    assert ctx.headers == [("x-trace", "t1"), ("accept", "*/*")]
    assert ("x-api-key", KEY) in server_list  # the server's own list is not edited


@pytest.mark.parametrize("padding", ["\xa0", "\x85", "\xe3\x80\x80", "\x0b", "\x0c"])
@pytest.mark.parametrize("where", ["before", "after"])
async def test_advisory_a_key_padded_with_other_whitespace_is_another_key(
    padding: str, where: str
) -> None:
    padded = padding + KEY if where == "before" else KEY + padding
    decision = await key_stage().request_headers(context(x_api_key=padded))
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_key")


async def test_optional_whitespace_around_a_key_is_not_part_of_it() -> None:
    ctx = context(x_api_key=f"{KEY} \t ")  # the server leaves trailing OWS in the value
    assert await key_stage().request_headers(ctx) is None
    assert ctx.identity is not None


@pytest.mark.parametrize("spelling", ["x_api_key", "x_api-key", "x-api_key"])
@pytest.mark.parametrize("with_header", [True, False], ids=["beside-the-header", "alone"])
async def test_advisory_the_key_header_spelt_with_underscores_is_refused(
    spelling: str, with_header: bool
) -> None:
    ctx = context(x_api_key=KEY) if with_header else context()
    ctx.headers.append((spelling, KEY))
    decision = await key_stage().request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_key")
    assert ctx.identity is None


async def test_hiding_the_key_header_removes_its_underscore_spellings_too() -> None:
    ctx = _on_route(context(x_trace="t1"), hide=True)
    ctx.identity = Identity("payments", "mtls")  # identified before the key stage ran
    ctx.headers += [("x-api-key", KEY), ("x_api_key", KEY), ("x_api-key", KEY)]
    assert await key_stage().request_headers(ctx) is None
    assert ctx.headers == [("x-trace", "t1")]


@pytest.mark.parametrize("padding", ["\xa0", "\x85"])
async def test_advisory_a_bearer_token_padded_with_other_whitespace_is_malformed(
    issuer: Issuer, padding: str
) -> None:
    ctx = context()
    ctx.headers.append(("authorization", f"Bearer {issuer.token()}{padding}"))
    decision = await pipeline(issuer).request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_request")


def test_scope_claims_are_split_on_spaces_only() -> None:
    assert scopes_from({"scope": "accounts:read\xa0admin  other"}) == {
        "accounts:read\xa0admin",
        "other",
    }
    assert scopes_from({"scp": "a\x85b"}) == {"a\x85b"}


async def test_without_hide_credentials_the_api_key_header_is_forwarded() -> None:
    ctx = _on_route(context(x_api_key=KEY), hide=False)
    assert await key_stage().request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.header_values("x-api-key") == [KEY]
    plain = context(x_api_key=KEY)  # no route at all (as in the stage's own tests)
    assert await key_stage().request_headers(plain) is None
    assert plain.header_values("x-api-key") == [KEY]


@pytest.mark.parametrize(
    ("query", "forwarded"),
    [
        (f"api_key={KEY}", ""),
        (f"api_key={KEY}&a=1", "a=1"),
        (f"a=1&api_key={KEY}", "a=1"),
        (
            f"a=1&b=%2Fx%20y&a=2&api_key={KEY}&plus=a+b&empty=&flag&c=%E2%82%AC",
            "a=1&b=%2Fx%20y&a=2&plus=a+b&empty=&flag&c=%E2%82%AC",
        ),
        (f"api%5Fkey={KEY}&API_KEY=x&api_key2=y", "API_KEY=x&api_key2=y"),
        (f"x=1&&api_key={KEY}&", "x=1&&"),
        ("api_key=pk%5Ftest%5F0123456789abcdef&z=%41", "z=%41"),
    ],
)
async def test_hide_credentials_removes_the_api_key_parameter_only(
    query: str, forwarded: str
) -> None:
    ctx = _on_route(context(), hide=True)
    ctx.query = query
    assert await query_key_stage().request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "mobile"
    assert ctx.query == forwarded


async def test_without_hide_credentials_the_api_key_parameter_is_forwarded() -> None:
    ctx = _on_route(context(), hide=False)
    ctx.query = f"a=1&api_key={KEY}&b=2"
    assert await query_key_stage().request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.query == f"a=1&api_key={KEY}&b=2"


@pytest.mark.parametrize(
    ("header", "query"),
    [(True, f"api_key={KEY}"), (False, f"api_key={KEY}&api_key={KEY}"), (False, "api_key=")],
)
async def test_a_key_sent_twice_or_empty_in_the_query_is_refused(header: bool, query: str) -> None:
    ctx = context(x_api_key=KEY) if header else context()
    ctx.query = query
    decision = await query_key_stage().request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_key")


async def test_the_key_parameter_is_only_a_credential_when_configured() -> None:
    ctx = _on_route(context(), hide=True)
    ctx.query = f"api_key={KEY}"
    assert await key_stage().request_headers(ctx) is None
    assert ctx.identity is None  # not this method: authn_required will refuse it
    assert ctx.query == f"api_key={KEY}"
    assert challenge(ApiKeyAuthConfig(query_param="api_key"))[1] == (
        'ApiKey realm="dijk", header="X-API-Key", query="api_key"'
    )


@pytest.mark.parametrize("hide", [True, False])
async def test_hide_credentials_removes_the_bearer_token(issuer: Issuer, hide: bool) -> None:
    token = issuer.token()
    ctx = _on_route(context(token, x_trace="t1"), hide=hide)
    assert await pipeline(issuer).request_headers(ctx) is None
    assert ctx.identity is not None
    assert (ctx.identity.method, ctx.identity.consumer) == ("jwt", "jwt:" + issuer.claims()["sub"])
    assert ctx.header_values("authorization") == ([] if hide else [f"Bearer {token}"])
    assert ctx.header_values("x-trace") == ["t1"]


async def test_credentials_sent_along_are_removed_too(issuer: Issuer) -> None:
    """The key identified the caller; the bearer token (never checked) and a Basic header
    on a route that accepts bearer tokens must not reach the upstream either."""
    for authorization in ("Bearer not-even-a-jwt", "Basic dXNlcjpwYXNz"):
        ctx = _on_route(context(x_api_key=KEY, authorization=authorization), hide=True)
        assert await pipeline(issuer).request_headers(ctx) is None
        assert ctx.identity is not None
        assert ctx.identity.method == "api_key"
        assert ctx.headers == []
        shown = _on_route(context(x_api_key=KEY, authorization=authorization), hide=False)
        assert await pipeline(issuer).request_headers(shown) is None
        assert [name for name, _ in shown.headers] == ["x-api-key", "authorization"]


async def test_after_a_client_certificate_any_key_or_token_is_removed(issuer: Issuer) -> None:
    ring = CertificateRing(
        [ConsumerConfig(name="payments", client_certificates=[{"sha256": "ab" * 32}])]
    )
    chain = Pipeline([MtlsStage(ring, None), query_key_stage(), *pipeline(issuer).stages[1:]])
    ctx = _on_route(
        context(issuer.token(), x_api_key=KEY), hide=True, auth=("mtls", "api_key", "jwt")
    )
    ctx.tls = _tls("ab" * 32)
    ctx.query = f"api_key={KEY}&keep=1"
    assert await chain.request_headers(ctx) is None
    assert ctx.identity is not None
    assert (ctx.identity.consumer, ctx.identity.method) == ("payments", "mtls")
    assert ctx.headers == []
    assert ctx.query == "keep=1"


async def test_a_refused_credential_is_not_edited(issuer: Issuer) -> None:
    ctx = _on_route(context(issuer.token(), x_api_key="nope"), hide=True)
    decision = await pipeline(issuer).request_headers(ctx)
    assert decision is not None
    assert decision.reason == "auth.invalid_key"
    assert [name for name, _ in ctx.headers] == ["x-api-key", "authorization"]


async def test_opaque_token_is_left_to_introspection_which_removes_it(issuer: Issuer) -> None:
    jwt = JwtStage(
        verifier_for(issuer.jwks()),
        RevocationList.from_url("memory://stages"),
        opaque_tokens_elsewhere=True,
    )
    introspection = IntrospectionStage(fake_introspector(ACTIVE), None, jwts_elsewhere=True)
    ctx = _on_route(context("opaque-token-value"), hide=True, auth=("jwt", "introspection"))
    assert await jwt.request_headers(ctx) is None
    assert ctx.identity is None
    assert ctx.header_values("authorization") == ["Bearer opaque-token-value"]
    assert await introspection.request_headers(ctx) is None
    assert ctx.identity is not None
    assert (ctx.identity.consumer, ctx.identity.method) == ("introspection:svc", "introspection")
    assert ctx.header_values("authorization") == []
    shown = _on_route(context("opaque-token-value"), hide=False, auth=("introspection",))
    stage = IntrospectionStage(fake_introspector(ACTIVE), None)
    assert await stage.request_headers(shown) is None
    assert shown.header_values("authorization") == ["Bearer opaque-token-value"]


async def test_an_unverified_caller_of_on_unavailable_allow_is_hidden_too() -> None:
    down = IntrospectionUnavailable("timeout")
    stage = IntrospectionStage(fake_introspector(down, on_unavailable="allow"), None)
    ctx = _on_route(context("opaque-token-value"), hide=True, auth=("introspection",))
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "unverified"
    assert ctx.header_values("authorization") == []


@pytest.mark.parametrize(
    ("query", "name", "values", "without"),
    [
        ("", "k", [], ""),
        ("a=1&b=2", "k", [], "a=1&b=2"),
        ("k=1&k=2", "k", ["1", "2"], ""),
        ("k", "k", [""], ""),
        ("k=a+b%2B%2f", "k", ["a b+/"], ""),
        ("%6B=%FF&k2=1&K=2", "k", ["\xff"], "k2=1&K=2"),
        ("a=%6B&k=1;x=2", "k", ["1;x=2"], "a=%6B"),
        ("a=1&k=&b=%2", "k", [""], "a=1&b=%2"),
    ],
)
def test_query_parameters_are_matched_decoded_and_removed_byte_exact(
    query: str, name: str, values: list[str], without: str
) -> None:
    assert query_values(query, name) == values
    assert without_param(query, name) == without


@pytest.mark.parametrize(
    "query",
    [
        f"api_key={KEY}&api.key={KEY}",
        f"api.key={KEY}",
        f"api+key={KEY}",
        f"api%20key={KEY}",
        f"+api_key={KEY}",
        f"api_key[]={KEY}",
        f"api_key[0]={KEY}&api_key={KEY}",
        f"api[key={KEY}",
    ],
)
async def test_advisory_the_key_parameter_in_a_spelling_form_parsers_merge_is_refused(
    query: str,
) -> None:
    ctx = context()
    ctx.query = query
    decision = await query_key_stage().request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (401, "auth.invalid_key")
    assert ctx.identity is None


async def test_other_parameters_like_the_key_parameter_are_not_variants() -> None:
    ctx = context()
    ctx.query = f"api_key={KEY}&api_key2=z&API_KEY=x&apikey=y&api-key=w"
    assert await query_key_stage().request_headers(ctx) is None
    assert ctx.identity is not None


def test_hiding_the_key_parameter_removes_the_spellings_form_parsers_merge() -> None:
    query = "a=1&api.key=k&api_key[]=k&api+key=k&api_key=k&api_key2=z&b=2"
    assert without_param(query, "api_key") == "a=1&api_key2=z&b=2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "routes: [{name: r, match: {path: /}, upstream: u, hide_credentials: true}]",
            "routes[0].hide_credentials: a public route (auth: []) receives no credential",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [mtls],"
            " hide_credentials: true}]",
            "routes[0].hide_credentials: mtls leaves nothing to hide",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [api_key],"
            " hide_credentials: true,"
            " rate_limit: [{key: consumer+header:X-Key, limit: 1, per_s: 1}]}]\n"
            "auth: {api_key: {header: X-Key}}",
            "routes[0].rate_limit[0].key: header:x-key is read after authentication",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u, auth: [jwt],"
            " hide_credentials: true}]\n"
            "consumers: [{name: c, rate_limit: [{key: header:Authorization, limit: 1,"
            " per_s: 1}]}]\n"
            "auth: {jwt: {jwks_file: /dev/null, issuer: i, audience: a, algorithms: [RS256]}}",
            "consumers[0].rate_limit[0].key: header:authorization is removed by "
            "hide_credentials on route 'r'",
        ),
        (
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {api_key: {query_param: 'api key'}}",
            "not a valid parameter name",
        ),
    ],
)
def test_hide_credentials_mistakes_are_reported(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text(BASE + text, "dijk.yaml")
    assert message in str(raised.value), str(raised.value)


def test_hide_credentials_is_off_by_default_and_fine_where_it_applies() -> None:
    config = load_config_text(
        BASE + "routes: [{name: r, match: {path: /}, upstream: u, auth: [api_key],"
        " hide_credentials: true, rate_limit: [{key: header:X-API-Key, limit: 9, per_s: 1},"
        " {key: api_key, limit: 9, per_s: 1}]},"
        " {name: s, match: {path: /s}, upstream: u, auth: [api_key]}]\n"
        "auth: {api_key: {query_param: api_key}}",
        "dijk.yaml",
    )
    assert [route.hide_credentials for route in config.routes] == [True, False]
    assert config.auth.api_key is not None
    assert config.auth.api_key.query_param == "api_key"


# ---- token subjects linked to consumers (consumers[].jwt_subjects / introspection_subjects) ---

OTHER_ISSUER = "https://idp.elsewhere.test"


@pytest.fixture
def linked_config(
    tmp_path: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., DijkConfig]:
    """A configuration with jwt and introspection whose consumers are ``consumers``."""
    monkeypatch.setenv("LINKED_INTROSPECTION_SECRET", "secret")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks()))

    def make(consumers: str, route: str = "") -> DijkConfig:
        return load_config_text(
            BASE + f"auth: {{jwt: {{jwks_file: {jwks_file}, issuer: '{ISSUER}',"
            f" audience: '{AUDIENCE}', algorithms: [RS256], groups_claim: groups}},"
            " introspection: {url: 'http://127.0.0.1:1/introspect', client_id: dijk,"
            " client_secret_env: LINKED_INTROSPECTION_SECRET}}\n"
            + consumers
            + (route or "routes: [{name: r, match: {path_prefix: /}, upstream: u, auth: [jwt]}]\n"),
            "dijk.yaml",
        )

    return make


PARTNER = (
    "consumers:\n"
    "  - name: partner\n"
    "    jwt_subjects: [svc-partner]\n"
    "    introspection_subjects: [partner-client]\n"
    "    scopes: [accounts:read, reports:read]\n"
    "    groups: [partners]\n"
    "  - name: admin-app\n"
    "    scopes: [accounts:read, accounts:write, admin]\n"
    "    groups: [admins]\n"
)


def _jwt_stage(idp: Issuer, config: Any, **rules: Any) -> JwtStage:
    verifier = verifier_for(idp.jwks(), ("RS256",), **rules)
    verifier.consumers = TokenConsumers.for_jwt(config)
    return JwtStage(verifier, None)


async def test_a_listed_jwt_subject_is_its_consumer_with_scopes_capped_by_the_consumer(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    stage = _jwt_stage(issuer, linked_config(PARTNER), groups_claim="groups")
    ctx = context(
        issuer.token(sub="svc-partner", scope="accounts:read accounts:write", groups=["beta"])
    )
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "partner"
    assert ctx.identity.method == "jwt"
    # token ∩ consumer: accounts:write (token only) and reports:read (consumer only) are out
    assert ctx.identity.scopes == frozenset({"accounts:read"})
    assert ctx.identity.groups == frozenset({"partners", "beta"})
    assert ctx.identity.claims["sub"] == "svc-partner"  # claim: rate-limit keys still work
    assert ctx.identity.credential_id.startswith("tok:")


async def test_an_unlisted_subject_keeps_its_token_scopes_under_a_namespaced_name(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    stage = _jwt_stage(issuer, linked_config(PARTNER))
    ctx = context(issuer.token(sub="someone", scope="accounts:read accounts:write"))
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "jwt:someone"
    assert ctx.identity.scopes == frozenset({"accounts:read", "accounts:write"})
    assert ctx.identity.groups == frozenset()


async def test_advisory_a_token_whose_sub_is_a_consumer_name_does_not_become_that_consumer(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    """Consumer names and token subjects are different namespaces: a token issued for
    sub="admin-app" (an IdP user anyone could register under that name) must not take the
    configured consumer's name, limits, counters, groups or scopes."""
    stage = _jwt_stage(issuer, linked_config(PARTNER), groups_claim="groups")
    for sub in ("admin-app", "partner"):
        ctx = context(issuer.token(sub=sub, scope="accounts:read"))
        assert await stage.request_headers(ctx) is None
        assert ctx.identity is not None
        assert ctx.identity.consumer == f"jwt:{sub}"
        assert ctx.identity.scopes == frozenset({"accounts:read"})
        assert ctx.identity.groups == frozenset()


async def test_advisory_a_subject_from_another_issuer_does_not_claim_a_consumer(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    """A link is (issuer, subject): issuer B minting sub="svc-partner" is not the consumer
    linked at issuer A, even if a verifier were to accept B's tokens."""
    config = linked_config(PARTNER)
    links = TokenConsumers.for_jwt(config)
    assert links.caller(ISSUER, "svc-partner", frozenset(), frozenset()).linked
    assert not links.caller(OTHER_ISSUER, "svc-partner", frozenset(), frozenset()).linked
    assert not links.caller(None, "svc-partner", frozenset(), frozenset()).linked
    # A verifier that trusts issuer B, with the links of a configuration whose issuer is A.
    stage = _jwt_stage(issuer, config, issuer=OTHER_ISSUER)
    ctx = context(issuer.token(iss=OTHER_ISSUER, sub="svc-partner"))
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "jwt:svc-partner"
    # And with the configuration's own verifier, issuer B's token is refused outright.
    refused = await _jwt_stage(issuer, config).request_headers(
        context(issuer.token(iss=OTHER_ISSUER, sub="svc-partner"))
    )
    assert refused is not None
    assert (refused.status, refused.reason) == (401, "auth.invalid_token")


async def test_each_method_has_its_own_subjects(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    """A jwt_subjects entry never links an introspection answer, nor the reverse: the JWT
    issuer and the introspection server are different authorities."""
    config = linked_config(PARTNER)
    introspector = fake_introspector(
        ActiveToken("svc-partner", frozenset({"accounts:read"}), frozenset(), "tok:00", None)
    )
    introspector.consumers = TokenConsumers.for_introspection(config)
    ctx = context("opaque-token-value")
    assert await IntrospectionStage(introspector, None).request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "introspection:svc-partner"
    linked = fake_introspector(
        ActiveToken(
            "partner-client",
            frozenset({"accounts:read", "accounts:write"}),
            frozenset({"beta"}),
            "tok:01",
            None,
        )
    )
    linked.consumers = TokenConsumers.for_introspection(config)
    ctx = context("opaque-token-value")
    assert await IntrospectionStage(linked, None).request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "partner"
    assert ctx.identity.scopes == frozenset({"accounts:read"})
    assert ctx.identity.groups == frozenset({"partners", "beta"})
    stage = _jwt_stage(issuer, config)
    ctx = context(issuer.token(sub="partner-client"))
    assert await stage.request_headers(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer == "jwt:partner-client"


async def test_identity_resources_link_subjects_for_both_methods(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    resources = IdentityResources.from_config(linked_config(PARTNER))
    assert resources.jwt is not None
    assert resources.introspection is not None
    assert resources.jwt.consumers.method == "jwt"
    assert len(resources.jwt.consumers) == 1
    assert resources.introspection.consumers.method == "introspection"
    assert len(resources.introspection.consumers) == 1


def _wired(config: Any) -> Pipeline:
    """The stages a route gets from the real wiring (stages/__init__.py), minus audit."""
    resources = StageResources.from_config(config)
    route = config.routes[0]
    return Pipeline(
        [
            *identity_stages(config, route, resources),
            ScopeStage(route),
            *protection_stages(config, route, resources),
        ]
    )


async def test_a_linked_token_gets_its_consumers_rate_limit_and_an_unlinked_one_does_not(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    consumers = PARTNER.replace(
        "    groups: [partners]\n",
        "    groups: [partners]\n    rate_limit: [{name: partner-window, limit: 2, per_s: 60}]\n",
        1,
    ).replace(
        "    groups: [admins]\n",
        "    groups: [admins]\n    rate_limit: [{name: admin-window, limit: 1, per_s: 60}]\n",
    )
    config = linked_config(consumers)
    chain = _wired(config)
    try:
        linked = [await chain.request_headers(context(issuer.token(sub="svc-partner")))]
        linked += [await chain.request_headers(context(issuer.token(sub="svc-partner")))]
        assert linked == [None, None]
        refused = await chain.request_headers(context(issuer.token(sub="svc-partner")))
        assert refused is not None
        assert (refused.status, refused.reason) == (429, "ratelimit.exceeded")
        assert refused.extra["policy"] == "partner-window"
        # Neither an unlinked subject nor one equal to a consumer's name shares the limits.
        for sub in ("someone", "partner", "admin-app", "admin-app"):
            assert await chain.request_headers(context(issuer.token(sub=sub))) is None
    finally:
        await chain.close()


async def test_a_linked_token_gets_its_consumers_concurrency_cap(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    consumers = PARTNER.replace(
        "    groups: [partners]\n", "    groups: [partners]\n    max_concurrent_requests: 1\n", 1
    )
    chain = _wired(linked_config(consumers))
    try:
        first = context(issuer.token(sub="svc-partner"))
        assert await chain.request_headers(first) is None
        second = await chain.request_headers(context(issuer.token(sub="svc-partner")))
        assert second is not None
        assert (second.status, second.reason) == (429, "ratelimit.concurrency_exceeded")
        assert await chain.request_headers(context(issuer.token(sub="partner"))) is None
        await chain.log(first)
        assert await chain.request_headers(context(issuer.token(sub="svc-partner"))) is None
    finally:
        await chain.close()


async def test_a_linked_consumers_groups_open_a_group_route(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    route = (
        "routes: [{name: r, match: {path_prefix: /}, upstream: u, auth: [jwt],"
        " groups: [partners], scopes: [accounts:read]}]\n"
    )
    chain = _wired(linked_config(PARTNER, route))
    try:
        assert await chain.request_headers(context(issuer.token(sub="svc-partner"))) is None
        denied = await chain.request_headers(context(issuer.token(sub="partner")))
        assert denied is not None
        assert (denied.status, denied.reason) == (403, "authz.group_not_allowed")
    finally:
        await chain.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "consumers:\n"
            "  - {name: a, jwt_subjects: [svc-1, svc-2]}\n"
            "  - {name: b, jwt_subjects: [svc-3, svc-2]}\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {jwt: {jwks_file: /dev/null, issuer: i, audience: a, algorithms: [RS256]}}",
            "dijk.yaml:6: consumers[1].jwt_subjects[1]: subject 'svc-2' already names consumer 'a'",
        ),
        (
            "consumers:\n"
            "  - {name: a, introspection_subjects: [c-1]}\n"
            "  - {name: b, introspection_subjects: [c-1]}\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {introspection: {url: 'https://idp/introspect', client_id: d,"
            " client_secret_env: UNSET_SECRET_FOR_TEST}}",
            "dijk.yaml:6: consumers[1].introspection_subjects[0]: subject 'c-1' already names "
            "consumer 'a'",
        ),
        (
            "consumers: [{name: a, jwt_subjects: [svc-1]}]\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n",
            "dijk.yaml:4: consumers[0].jwt_subjects: lists token subjects but auth.jwt is not "
            "configured",
        ),
        (
            "consumers: [{name: a, introspection_subjects: [svc-1]}]\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n",
            "consumers[0].introspection_subjects: lists token subjects but auth.introspection "
            "is not configured",
        ),
        (
            "consumers: [{name: a, jwt_subjects: ['']}]\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n",
            "consumers[0].jwt_subjects[0]: String should have at least 1 character",
        ),
        (
            "consumers: [{name: unverified}]\n"
            "routes: [{name: r, match: {path: /}, upstream: u}]\n"
            "auth: {introspection: {url: 'https://idp/introspect', client_id: d,"
            " client_secret_env: UNSET_SECRET_FOR_TEST, on_unavailable: allow}}",
            "consumers[0].name: 'unverified' is the name of callers let through",
        ),
    ],
)
def test_token_subject_mistakes_are_reported_with_their_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text(BASE + text, "dijk.yaml")
    assert message in str(raised.value), str(raised.value)


def test_the_same_subject_may_name_one_consumer_per_method(
    linked_config: Callable[..., DijkConfig], issuer: Issuer
) -> None:
    config = linked_config(
        "consumers:\n"
        "  - {name: a, jwt_subjects: [svc-1]}\n"
        "  - {name: b, introspection_subjects: [svc-1]}\n",
    )
    assert [consumer.jwt_subjects for consumer in config.consumers] == [["svc-1"], []]
