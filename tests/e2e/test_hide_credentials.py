"""``hide_credentials`` through a real ``dijk serve -c`` process and a recording upstream.

Two routes accept the same methods (API key in a header or a query parameter, JWT,
introspected opaque token); only ``/hidden`` says ``hide_credentials: true``. The echo
upstream records the exact request target and headers it received, so each test proves
both sides: the credential is gone on ``/hidden`` (and nowhere in the bytes the upstream
got), still there on ``/shown``, and every other header and query parameter arrives as the
client sent it. The audit log still names the consumer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_auth_introspection import CLIENT_ID, CLIENT_SECRET, AuthorizationServer
from tests.support.gateway import GatewayProcess, base_config, parse_response, raw_request
from tests.support.upstream import Received, RecordingUpstream
from tests.unit.test_jwt_advisories import AUDIENCE, ISSUER, Issuer

KEY = "dk_hide_" + "3c9a41f07e2b5d86a1f4"
OPAQUE = "opaque-" + "7f3e9b2c4d1a6e8f0b5c"
ADMIN_TOKEN = "admin-hide-" + "0a1b2c3d4e5f6a7b"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def idp() -> Iterator[AuthorizationServer]:
    server = AuthorizationServer().start()
    server.grant(OPAQUE, client_id="batch-job", scope="accounts:read")
    yield server
    server.stop()


def _route(name: str, hide: bool) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"path_prefix": f"/{name}"},
        "upstream": "echo",
        "auth": ["api_key", "jwt", "introspection"],
        "scopes": ["accounts:read"],
        "hide_credentials": hide,
    }


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: RecordingUpstream,
    issuer: Issuer,
    idp: AuthorizationServer,
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("hide-credentials")
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks()))
    config = base_config(
        upstream.port,
        consumers=[{"name": "app", "api_keys": [{"env": "HIDE_KEY"}], "scopes": ["accounts:read"]}],
        auth={
            "api_key": {"header": "X-API-Key", "query_param": "api_key"},
            "jwt": {
                "jwks_file": str(jwks_file),
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256"],
            },
            "introspection": {
                "url": idp.url,
                "client_id": CLIENT_ID,
                "client_secret_env": "HIDE_INTROSPECTION_SECRET",
            },
        },
        routes=[_route("hidden", True), _route("shown", False)],
        # The test client stands for a proxy in front, whose X-Request-Id the gateway keeps.
        trusted_proxies=["127.0.0.1/32"],
        audit={"url": "sqlite:///./audit.db"},
        logging={"level": "debug", "access_log": True},
    )
    env = {
        "HIDE_KEY": KEY,
        "HIDE_INTROSPECTION_SECRET": CLIENT_SECRET,
        "DIJK_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    process = GatewayProcess(config, directory, env)
    process.start()
    yield process
    process.stop()


def send(
    gateway: GatewayProcess, upstream: RecordingUpstream, target: str, *headers: str
) -> tuple[int, Received | None]:
    """One raw request (the target goes out byte for byte); what the upstream received."""
    upstream.reset()
    lines = [f"GET {target} HTTP/1.1", "Host: gw.example", *headers, "Connection: close"]
    raw = raw_request(gateway.port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    status = parse_response(raw)[0]
    return status, (upstream.requests[-1] if upstream.requests else None)


def names(received: Received) -> list[str]:
    return [name for name, _ in received.headers]


# A query string with everything that re-encoding would spoil: repeated names, reserved and
# non-ASCII characters percent-encoded (upper and lower case hex), '+', empty values, a
# parameter without '=', a look-alike name and an encoded '/'.
BEFORE = "a=1&b=%2Fx%20y&a=2"
AFTER = "plus=a+b&empty=&flag&c=%E2%82%AC&lc=%e2%82%ac&API_KEY=not-ours&api_key2=z&a=3"


def test_api_key_header_is_hidden(gateway: GatewayProcess, upstream: RecordingUpstream) -> None:
    status, received = send(
        gateway, upstream, f"/hidden/x?{BEFORE}", f"X-API-Key: {KEY}", "X-Trace: t-1"
    )
    assert status == 200
    assert received is not None
    assert received.header("x-api-key") is None
    assert received.header("x-trace") == "t-1"
    assert received.target == f"/hidden/x?{BEFORE}"
    assert KEY.encode() not in upstream.raw


def test_api_key_header_is_forwarded_without_hide_credentials(
    gateway: GatewayProcess, upstream: RecordingUpstream
) -> None:
    status, received = send(gateway, upstream, "/shown/x", f"X-API-Key: {KEY}")
    assert status == 200
    assert received is not None
    assert received.header_values("x-api-key") == [KEY]


@pytest.mark.parametrize(
    ("query", "forwarded"),
    [
        (f"{BEFORE}&api_key={KEY}&{AFTER}", f"{BEFORE}&{AFTER}"),
        (f"api_key={KEY}&{AFTER}", AFTER),
        (f"{BEFORE}&api_key={KEY}", BEFORE),
        (f"api%5Fkey={KEY.replace('_', '%5F')}&{BEFORE}", BEFORE),  # an encoded name counts
    ],
)
def test_api_key_parameter_is_hidden_and_the_rest_of_the_query_kept_exactly(
    gateway: GatewayProcess, upstream: RecordingUpstream, query: str, forwarded: str
) -> None:
    status, received = send(gateway, upstream, f"/hidden/x?{query}")
    assert status == 200
    assert received is not None
    assert received.target == f"/hidden/x?{forwarded}"
    assert KEY.encode() not in upstream.raw
    assert KEY.replace("_", "%5F").encode() not in upstream.raw


def test_a_query_that_was_only_the_key_loses_its_question_mark(
    gateway: GatewayProcess, upstream: RecordingUpstream
) -> None:
    status, received = send(gateway, upstream, f"/hidden/x?api_key={KEY}")
    assert status == 200
    assert received is not None
    assert received.target == "/hidden/x"


def test_api_key_parameter_is_forwarded_without_hide_credentials(
    gateway: GatewayProcess, upstream: RecordingUpstream
) -> None:
    query = f"{BEFORE}&api_key={KEY}&{AFTER}"
    status, received = send(gateway, upstream, f"/shown/x?{query}")
    assert status == 200
    assert received is not None
    assert received.target == f"/shown/x?{query}"


def test_a_key_in_header_and_query_is_refused(
    gateway: GatewayProcess, upstream: RecordingUpstream
) -> None:
    status, received = send(gateway, upstream, f"/hidden/x?api_key={KEY}", f"X-API-Key: {KEY}")
    assert status == 401
    assert received is None


@pytest.mark.parametrize("route", ["hidden", "shown"])
def test_jwt_is_hidden_only_with_hide_credentials(
    gateway: GatewayProcess, upstream: RecordingUpstream, issuer: Issuer, route: str
) -> None:
    token = issuer.token()
    status, received = send(
        gateway, upstream, f"/{route}/x?{AFTER}", f"Authorization: Bearer {token}", "X-Trace: t"
    )
    assert status == 200
    assert received is not None
    assert received.target == f"/{route}/x?{AFTER}"
    assert received.header("x-trace") == "t"
    if route == "hidden":
        assert "authorization" not in names(received)
        assert token.rsplit(".", 1)[1].encode() not in upstream.raw
    else:
        assert received.header_values("authorization") == [f"Bearer {token}"]


@pytest.mark.parametrize("route", ["hidden", "shown"])
def test_introspected_token_is_hidden_only_with_hide_credentials(
    gateway: GatewayProcess, upstream: RecordingUpstream, route: str
) -> None:
    status, received = send(gateway, upstream, f"/{route}/x", f"Authorization: Bearer {OPAQUE}")
    assert status == 200
    assert received is not None
    if route == "hidden":
        assert "authorization" not in names(received)
        assert OPAQUE.encode() not in upstream.raw
    else:
        assert received.header_values("authorization") == [f"Bearer {OPAQUE}"]


def test_a_second_unchecked_credential_is_hidden_too(
    gateway: GatewayProcess, upstream: RecordingUpstream, issuer: Issuer
) -> None:
    """The key identifies the caller; the bearer token sent along is never checked, so it
    must not reach the upstream (which might log it, or trust it)."""
    forged = Issuer().token(sub="admin")
    status, received = send(
        gateway, upstream, "/hidden/x", f"X-API-Key: {KEY}", f"Authorization: Bearer {forged}"
    )
    assert status == 200
    assert received is not None
    assert "x-api-key" not in names(received)
    assert "authorization" not in names(received)
    status, received = send(
        gateway, upstream, "/shown/x", f"X-API-Key: {KEY}", f"Authorization: Bearer {forged}"
    )
    assert status == 200
    assert received is not None
    assert received.header_values("authorization") == [f"Bearer {forged}"]


def test_the_audit_log_still_names_the_consumer(
    gateway: GatewayProcess, upstream: RecordingUpstream, issuer: Issuer
) -> None:
    marker = "hide-audit-1"
    assert send(gateway, upstream, f"/hidden/x?api_key={KEY}", f"X-Request-Id: {marker}k")[0] == 200
    token_headers = (f"Authorization: Bearer {OPAQUE}", f"X-Request-Id: {marker}t")
    assert send(gateway, upstream, "/hidden/x", *token_headers)[0] == 200
    found: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + 10
    while len(found) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        found = {
            request_id: (consumer, method)
            for request_id, consumer, method in _audit_rows(gateway.directory / "audit.db")
            if request_id.startswith(marker)
        }
    assert found == {
        f"{marker}k": ("app", "api_key"),
        f"{marker}t": ("introspection:batch-job", "introspection"),
    }


def _audit_rows(database: Path) -> list[tuple[str, str, str]]:
    if not database.exists():
        return []
    with closing(sqlite3.connect(database)) as connection:
        try:
            rows = connection.execute(
                "SELECT request_id, consumer, auth_method FROM dijk_audit"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_a_key_in_the_query_reaches_no_log_or_file(
    gateway: GatewayProcess, upstream: RecordingUpstream
) -> None:
    """Keys in URLs are the classic leak: neither route writes one anywhere."""
    for route in ("hidden", "shown"):
        assert send(gateway, upstream, f"/{route}/x?a=1&api_key={KEY}")[0] == 200
        assert send(gateway, upstream, f"/{route}/x?api_key={KEY}x")[0] == 401
    time.sleep(0.5)  # let the audit writer flush
    written = [path for path in gateway.directory.rglob("*") if path.is_file()]
    assert gateway.log_path in written
    for path in written:
        if path.name in ("dijk.yaml", "jwks.json"):
            continue  # our own inputs
        assert KEY.encode() not in path.read_bytes(), f"the key leaked into {path.name}"


@pytest.mark.parametrize("route", ["hidden", "shown"])
@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (f"?api_key={KEY}&api.key={KEY}", ()),
        (f"?api_key[]={KEY}", ()),
        (f"?api+key={KEY}", ()),
        ("", (f"X-API-Key: {KEY}", f"X_API_Key: {KEY}")),
        ("", (f"X_API_KEY: {KEY}",)),
    ],
    ids=["dotted-param", "array-param", "spaced-param", "underscore-header", "underscore-alone"],
)
def test_advisory_key_spellings_an_upstream_merges_are_refused_and_not_forwarded(
    gateway: GatewayProcess,
    upstream: RecordingUpstream,
    route: str,
    target: str,
    headers: tuple[str, ...],
) -> None:
    status, received = send(gateway, upstream, f"/{route}/x{target}", *headers)
    assert status == 401
    assert received is None
    assert KEY.encode() not in upstream.raw
