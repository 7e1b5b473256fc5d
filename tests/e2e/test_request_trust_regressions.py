"""Regressions of an outside attack test, through a real ``dijk serve -c`` process.

Each test sends the attacker's exact request over a raw loopback socket and checks both
the answer and what the recording upstream received (or that it received nothing):
``HEAD`` past ``scopes_by_method``, method-override / URL-rewrite / client-address headers,
the API key header spelt with underscores, ``Connection`` naming an end-to-end field, a
repeated ``Authorization`` on the admin listener, credentials padded with a no-break space
or NEL, and a client-chosen ``X-Request-Id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config, parse_response, raw_request
from tests.support.upstream import RecordingUpstream

READ_KEY = "dk_read_" + "8e1f0c3b5a7d92e4c6b1"
WRITE_ONLY_KEY = "dk_wonly_" + "2b4d6f8a0c1e3a5c7e9f"
ADMIN_TOKEN = "admin-trust-" + "5c4b3a2918f7e6d5"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    config = base_config(
        upstream.port,
        consumers=[
            {
                "name": "reader",
                "api_keys": [{"env": "TRUST_READ_KEY"}],
                "scopes": ["accounts:read"],
            },
            {
                "name": "poster",
                "api_keys": [{"env": "TRUST_WRITE_ONLY_KEY"}],
                "scopes": ["accounts:write"],
            },
        ],
        auth={"api_key": {"header": "X-API-Key"}},
        routes=[
            {
                "name": "accounts",
                "match": {"path_prefix": "/api/v1/accounts", "methods": ["GET", "POST"]},
                "upstream": "echo",
                "auth": ["api_key"],
                "scopes_by_method": {"GET": ["accounts:read"], "POST": ["accounts:write"]},
            },
            {
                "name": "hidden",
                "match": {"path_prefix": "/hidden"},
                "upstream": "echo",
                "auth": ["api_key"],
                "hide_credentials": True,
            },
            {
                "name": "legacy",
                "match": {"path_prefix": "/legacy"},
                "upstream": "echo",
                "strip_request_headers": ["X-Legacy-Secret"],
            },
            {"name": "open", "match": {"path_prefix": "/"}, "upstream": "echo"},
        ],
        logging={"access_log": True},
    )
    env = {
        "TRUST_READ_KEY": READ_KEY,
        "TRUST_WRITE_ONLY_KEY": WRITE_ONLY_KEY,
        "DIJK_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    process = GatewayProcess(config, tmp_path_factory.mktemp("trust"), env)
    process.start()
    yield process
    process.stop()


def send(
    port: int, method: str, target: str, *fields: bytes, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One raw request, field lines byte for byte as given (no normalising by a client)."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: gw.test", *fields]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    raw = raw_request(port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return parse_response(raw)


def problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    return document


def key(value: str) -> bytes:
    return b"X-API-Key: " + value.encode("latin-1")


# ---- HEAD needs the scopes of GET -----------------------------------------------------------


def test_head_without_the_get_scope_is_refused_like_get(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    for method in ("HEAD", "GET"):
        status, headers, _ = send(gateway.port, method, "/api/v1/accounts/1", key(WRITE_ONLY_KEY))
        assert status == 403, method
        assert "content-length" in headers
        if method == "GET":
            assert problem(403, headers, _)["type"].endswith("/authz.insufficient_scope")
    assert recording.requests == []


def test_head_with_the_get_scope_is_forwarded_as_head(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, body = send(gateway.port, "HEAD", "/api/v1/accounts/1", key(READ_KEY))
    assert status == 200
    assert body == b""
    assert [request.method for request in recording.requests] == ["HEAD"]


# ---- headers that change what the upstream acts on or whom it thinks it serves --------------

SMUGGLED = [
    b"X-HTTP-Method-Override: DELETE",
    b"X-HTTP-Method: DELETE",
    b"X-Method-Override: DELETE",
    b"X-Original-URL: /admin/smuggled-path",
    b"X-Rewrite-URL: /admin/smuggled-path",
    b"X-Client-IP: 10.66.66.66",
    b"True-Client-IP: 10.66.66.66",
    b"CF-Connecting-IP: 10.66.66.66",
    b"X-Forwarded-Port: 6666",
    b"X-Forwarded-Prefix: /smuggled-prefix",
    b"X_HTTP_Method_Override: DELETE",
    b"X_Forwarded_For: 10.66.66.66",
    b"X_Original_URL: /admin/smuggled-path",
]


def test_method_override_rewrite_and_client_address_headers_do_not_reach_the_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, _ = send(gateway.port, "GET", "/open", *SMUGGLED, b"X-Kept: yes")
    assert status == 200
    (received,) = recording.requests
    assert received.method == "GET"
    assert received.header("x-kept") == "yes"
    sent_names = {line.split(b":", 1)[0].decode().lower() for line in SMUGGLED}
    assert not sent_names & {name for name, _ in received.headers}
    assert b"DELETE" not in recording.raw
    assert b"smuggled" not in recording.raw
    assert b"10.66.66.66" not in recording.raw
    assert b"6666" not in recording.raw
    assert received.header_values("x-forwarded-for") == ["127.0.0.1"]


def test_a_routes_own_strip_list_replaces_the_default_but_not_the_trust_rule(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, _ = send(
        gateway.port,
        "GET",
        "/legacy/x",
        b"X-HTTP-Method-Override: PATCH",
        b"X-Legacy-Secret: s1",
        b"X_Legacy_Secret: s2",
        b"CF-Connecting-IP: 10.66.66.66",
    )
    assert status == 200
    (received,) = recording.requests
    assert received.header("x-http-method-override") == "PATCH"  # the operator's choice
    assert b"s1" not in recording.raw
    assert b"s2" not in recording.raw
    # Off the strip list, a client-address header still passes only from a trusted proxy.
    assert b"10.66.66.66" not in recording.raw


# ---- the API key header spelt with underscores ----------------------------------------------


@pytest.mark.parametrize("spelling", [b"X_API_Key", b"x_api-key", b"X-API_KEY"])
def test_key_header_spelt_with_underscores_beside_the_key_is_refused_on_a_hiding_route(
    gateway: GatewayProcess, recording: RecordingUpstream, spelling: bytes
) -> None:
    status, headers, body = send(
        gateway.port, "GET", "/hidden/x", key(READ_KEY), spelling + b": " + READ_KEY.encode()
    )
    assert status == 401
    assert problem(401, headers, body)["type"].endswith("/auth.invalid_key")
    assert recording.requests == []


def test_key_header_spelt_with_underscores_is_not_a_credential(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    for path in ("/hidden/x", "/api/v1/accounts/1"):
        status, headers, body = send(gateway.port, "GET", path, b"X_API_Key: " + READ_KEY.encode())
        assert status == 401, path
        assert problem(401, headers, body)["type"].endswith("/auth.invalid_key")
    assert recording.requests == []


def test_hidden_key_reaches_the_upstream_in_no_spelling(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, _ = send(gateway.port, "GET", "/hidden/x", key(READ_KEY))
    assert status == 200
    (received,) = recording.requests
    assert not [name for name, _ in received.headers if "api" in name]
    assert READ_KEY.encode() not in recording.raw


# ---- Connection must not remove end-to-end fields -------------------------------------------


@pytest.mark.parametrize(
    ("connection", "named"),
    [
        (b"Connection: content-type", "content-type"),
        (b"Connection: keep-alive, Content-Type", "content-type"),
        (b"Connection: content-encoding", "content-encoding"),
        (b"Connection: authorization", "authorization"),
        (b"Connection: X-API-Key", "x-api-key"),
        (b"Connection: cookie", "cookie"),
    ],
)
def test_connection_naming_an_end_to_end_field_is_refused_and_not_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream, connection: bytes, named: str
) -> None:
    status, headers, body = send(
        gateway.port,
        "POST",
        "/open",
        b"Content-Type: application/json",
        connection,
        body=b'{"role": "admin"}',
    )
    assert status == 400
    document = problem(400, headers, body)
    assert document["type"].endswith("/http.connection_option")
    assert named in document["detail"]
    assert recording.requests == []


def test_connection_naming_a_custom_hop_by_hop_field_still_removes_it(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, _ = send(
        gateway.port,
        "POST",
        "/open",
        b"Content-Type: application/json",
        b"Connection: keep-alive, X-Hop-Secret",
        b"X-Hop-Secret: for-the-gateway",
        body=b"{}",
    )
    assert status == 200
    (received,) = recording.requests
    assert received.header("content-type") == "application/json"
    assert received.header("x-hop-secret") is None


# ---- the admin listener: one Authorization, exact bytes --------------------------------------


@pytest.mark.parametrize("good_first", [True, False], ids=["good-first", "good-last"])
def test_admin_refuses_two_authorization_headers(gateway: GatewayProcess, good_first: bool) -> None:
    good = b"Authorization: Bearer " + ADMIN_TOKEN.encode()
    bad = b"Authorization: Bearer not-the-token"
    fields = (good, bad) if good_first else (bad, good)
    status, headers, body = send(gateway.admin_port, "GET", "/admin/api/v1/status", *fields)
    assert status == 401
    assert problem(401, headers, body)["type"].endswith("/auth.invalid_request")
    assert 'error="invalid_request"' in headers["www-authenticate"]


@pytest.mark.parametrize("padding", [b"\xa0", b"\x85"])
def test_admin_token_padded_with_nbsp_or_nel_is_refused(
    gateway: GatewayProcess, padding: bytes
) -> None:
    field = b"Authorization: Bearer " + ADMIN_TOKEN.encode() + padding
    status, headers, body = send(gateway.admin_port, "GET", "/admin/api/v1/status", field)
    assert status == 401
    assert problem(401, headers, body)["type"].endswith("/auth.invalid_token")
    exact = b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b" \t"
    assert send(gateway.admin_port, "GET", "/admin/api/v1/status", exact)[0] == 200


# ---- API keys: the exact bytes ---------------------------------------------------------------


@pytest.mark.parametrize("padding", [b"\xa0", b"\x85"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_api_key_padded_with_nbsp_or_nel_is_refused_and_not_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream, padding: bytes, where: str
) -> None:
    value = padding + READ_KEY.encode() if where == "before" else READ_KEY.encode() + padding
    status, headers, body = send(gateway.port, "GET", "/api/v1/accounts/1", b"X-API-Key: " + value)
    assert status == 401
    assert problem(401, headers, body)["type"].endswith("/auth.invalid_key")
    assert recording.requests == []


def test_api_key_with_optional_whitespace_around_it_is_accepted(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, _, _ = send(
        gateway.port, "GET", "/api/v1/accounts/1", b"X-API-Key: \t " + READ_KEY.encode() + b" \t"
    )
    assert status == 200
    assert len(recording.requests) == 1


# ---- X-Request-Id: the gateway's own unless a trusted proxy sent it ---------------------------


def test_client_chosen_request_id_is_replaced_and_logged_beside_the_gateways(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    chosen = "chosen-by-client-7d1e"
    status, headers, _ = send(gateway.port, "GET", "/open", f"X-Request-Id: {chosen}".encode())
    assert status == 200
    own = headers["x-request-id"]
    assert GENERATED_ID.fullmatch(own)
    (received,) = recording.requests
    assert received.header_values("x-request-id") == [own]
    assert chosen.encode() not in recording.raw
    denied = send(gateway.port, "GET", "/api/v1/accounts/1", f"X-Request-Id: {chosen}".encode())
    assert denied[0] == 401
    assert json.loads(denied[2])["request_id"] != chosen
    lines = [json.loads(line) for line in gateway.logs().splitlines() if '"request_id"' in line]
    access = [line for line in lines if line.get("request_id") == own]
    assert access
    assert access[0]["client_request_id"] == chosen
