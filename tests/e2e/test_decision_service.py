"""The decision listeners of a real ``dijk serve``: Traefik forwardAuth, Envoy ext_authz over
HTTP and over gRPC (a client built from Envoy's protos), nginx auth_request's headers.

Each question runs the route's request phases as inline mode would: routing, network
policy by the client address the proxy names, API keys, scopes, rate limits, WAF on the
query and on a body the proxy forwards. The upstream is never called.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import grpc
import pytest
from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress
from envoy_data_plane.envoy.service.auth.v3 import (
    AttributeContext,
    AttributeContextHttpRequest,
    AttributeContextPeer,
    AttributeContextRequest,
    AuthorizationSyncStub,
    CheckRequest,
    CheckResponse,
)

from tests.support.gateway import GatewayProcess, base_config, free_port
from tests.support.upstream import RecordingUpstream

READ_KEY = "decision-read-key-0123456789abcdef"
WRITE_KEY = "decision-write-key-0123456789abcdef"
LIMITED_KEY = "decision-limited-key-0123456789abcd"  # only the rate-limit test uses it
INJECTION = "/api/items?q=x%27%20UNION%20SELECT%20password%20FROM%20users--"


def decision_config(upstream_port: int, **decision: Any) -> dict[str, Any]:
    route = {
        "upstream": "echo",
        "auth": ["api_key"],
        "hide_credentials": True,
        "waf": {"mode": "block", "paranoia": 1},
        "ip_deny": ["203.0.113.0/24"],
    }
    return base_config(
        upstream_port,
        consumers=[
            {
                "name": "reader",
                "api_keys": [{"sha256": hashlib.sha256(READ_KEY.encode()).hexdigest()}],
                "scopes": ["items:read"],
            },
            {
                "name": "writer",
                "api_keys": [{"sha256": hashlib.sha256(WRITE_KEY.encode()).hexdigest()}],
                "scopes": ["items:read", "items:write"],
            },
            {
                "name": "limited",
                "api_keys": [{"sha256": hashlib.sha256(LIMITED_KEY.encode()).hexdigest()}],
                "scopes": ["items:read"],
                "rate_limit": [{"limit": 5, "per_s": 60}],
            },
        ],
        auth={"api_key": {"header": "X-API-Key"}},
        routes=[
            {
                **route,
                "name": "items-read",
                "match": {"path_prefix": "/api/items", "methods": ["GET"]},
                "scopes": ["items:read"],
                "rate_limit": [{"key": "consumer", "limit": 1000, "per_s": 60}],
            },
            {
                **route,
                "name": "items-write",
                "match": {"path_prefix": "/api/items", "methods": ["POST"]},
                "scopes": ["items:write"],
            },
        ],
        decision={
            "listen": {"address": "127.0.0.1", "port": free_port()},
            "grpc": {"address": "127.0.0.1", "port": free_port()},
            **decision,
        },
    )


def ask(
    gateway: GatewayProcess,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    port = gateway.config["decision"]["listen"]["port"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return response.status, answer, response.read()
    finally:
        connection.close()


def traefik(
    gateway: GatewayProcess, method: str, uri: str, key: str | None = None, client: str = ""
) -> tuple[int, dict[str, str], bytes]:
    headers = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Uri": uri,
        "X-Forwarded-For": client or "198.51.100.20",
        "X-Forwarded-Proto": "https",
        "Host": "api.example",
    }
    if key:
        headers["X-API-Key"] = key
    return ask(gateway, "GET", "/forward-auth", headers)


@pytest.fixture(scope="module")
def decider(
    upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        decision_config(upstream.port), tmp_path_factory.mktemp("decider")
    ).start(timeout=60)
    yield gateway
    assert gateway.stop() == 0, gateway.logs()[-2000:]  # the gRPC listener closes cleanly too


def test_forward_auth_allows_with_consumer_scopes_and_request_id(
    decider: GatewayProcess, upstream: RecordingUpstream
) -> None:
    upstream.reset()
    status, headers, body = traefik(decider, "GET", "/api/items/7", READ_KEY)
    assert status == 200, body
    assert headers["x-dijk-consumer"] == "reader"
    assert headers["x-dijk-scopes"] == "items:read"
    assert len(headers["x-request-id"]) == 32
    assert upstream.requests == []  # a decision never calls the upstream


def test_forward_auth_refusals_carry_the_inline_status_and_problem(
    decider: GatewayProcess,
) -> None:
    status, headers, body = traefik(decider, "GET", "/api/items")
    assert (status, json.loads(body)["reason"]) == (401, "auth.missing_credentials")
    assert headers["content-type"] == "application/problem+json"
    status, _, body = traefik(decider, "POST", "/api/items", READ_KEY)
    assert (status, json.loads(body)["reason"]) == (403, "authz.insufficient_scope")
    status, _, body = traefik(decider, "GET", INJECTION, READ_KEY)
    assert (status, json.loads(body)["reason"]) == (403, "waf.sqli")
    status, headers, body = traefik(decider, "DELETE", "/api/items", READ_KEY)
    assert (status, json.loads(body)["reason"]) == (405, "route.method_not_allowed")
    assert headers["allow"] == "GET, HEAD, POST"


def test_forward_auth_rate_limit_answers_429_with_retry_after(decider: GatewayProcess) -> None:
    statuses = [traefik(decider, "GET", "/api/items", LIMITED_KEY)[0] for _ in range(5)]
    assert statuses == [200] * 5
    status, headers, body = traefik(decider, "GET", "/api/items", LIMITED_KEY)
    assert (status, json.loads(body)["reason"]) == (429, "ratelimit.exceeded")
    assert int(headers["retry-after"]) >= 1


def test_network_policy_judges_the_client_address_the_proxy_names(
    decider: GatewayProcess,
) -> None:
    status, _, body = traefik(decider, "GET", "/api/items", READ_KEY, client="203.0.113.9")
    assert (status, json.loads(body)["reason"]) == (403, "net.denied")
    # A client's own X-Forwarded-For entries stand left of the address Traefik appends.
    status, _, _ = traefik(decider, "GET", "/api/items", READ_KEY, client="203.0.113.9, 192.0.2.1")
    assert status == 200


def test_a_question_without_the_client_address_is_refused_not_judged_as_the_proxy(
    decider: GatewayProcess,
) -> None:
    """Without the header the client would look like the proxy (loopback): refuse."""
    status, _, body = ask(
        decider,
        "GET",
        "/forward-auth",
        {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/items", "X-API-Key": READ_KEY},
    )
    assert (status, json.loads(body)["reason"]) == (400, "decision.missing_header")


def test_auth_request_states_the_real_status_beside_nginxs_401_or_403(
    decider: GatewayProcess,
) -> None:
    nginx = {
        "X-Original-Method": "GET",
        "X-Original-URI": "/api/items",
        "X-Real-IP": "198.51.100.7",
        "X-API-Key": WRITE_KEY,
        # What the client sent on: never read in place of nginx's own headers.
        "X-Forwarded-Uri": "/elsewhere",
    }
    status, headers, _ = ask(decider, "GET", "/auth-request", nginx)
    assert (status, headers["x-dijk-consumer"]) == (200, "writer")
    status, headers, body = ask(
        decider, "GET", "/auth-request", {**nginx, "X-Original-URI": "/nowhere"}
    )
    assert status == 403  # nginx's auth_request takes only 2xx, 401 and 403
    assert headers["x-dijk-status"] == "404"
    assert json.loads(headers["x-dijk-problem"]) == json.loads(body)
    assert json.loads(body)["reason"] == "route.not_found"


def test_ext_authz_http_reads_path_under_prefix_and_checks_the_forwarded_body(
    decider: GatewayProcess,
) -> None:
    envoy = {
        "X-API-Key": WRITE_KEY,
        "X-Forwarded-For": "198.51.100.8",
        "Content-Type": "application/json",
        "Host": "api.example",
    }
    status, headers, _ = ask(decider, "POST", "/ext-authz/api/items", envoy, b'{"name": "ok"}')
    assert status == 200
    assert headers["x-dijk-consumer"] == "writer"
    assert headers["x-envoy-auth-headers-to-remove"] == "x-api-key"  # hide_credentials
    attack = b'{"name": "x\' UNION SELECT password FROM users--"}'
    status, _, body = ask(decider, "POST", "/ext-authz/api/items", envoy, attack)
    assert (status, json.loads(body)["reason"]) == (403, "waf.sqli")


def test_ext_authz_http_refuses_a_body_envoy_marks_as_partial(decider: GatewayProcess) -> None:
    """allow_partial_message: Envoy sends the first max_request_bytes and forwards the whole
    body on allow; an injection past the cut would reach the API unjudged."""
    envoy = {
        "X-API-Key": WRITE_KEY,
        "X-Forwarded-For": "198.51.100.8",
        "Content-Type": "application/x-www-form-urlencoded",
        "Host": "api.example",
        "x-envoy-auth-partial-body": "true",
    }
    cut = b"name=" + b"x" * 60
    status, _, body = ask(decider, "POST", "/ext-authz/api/items", envoy, cut)
    assert (status, json.loads(body)["reason"]) == (413, "decision.partial_body")
    envoy["x-envoy-auth-partial-body"] = "false"
    status, _, _ = ask(decider, "POST", "/ext-authz/api/items", envoy, cut)
    assert status == 200


def test_only_the_configured_proxies_may_ask(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = decision_config(recording.port, proxies=["192.0.2.10/32"])
    config["audit"] = {"url": "sqlite:///./audit.db"}
    gateway = start_gateway(config)
    status, _, body = traefik(gateway, "GET", "/api/items", READ_KEY)
    assert (status, json.loads(body)["reason"]) == (403, "decision.untrusted_peer")
    response = check(gateway, "GET", "/api/items", READ_KEY)
    assert response.status is not None
    assert (response.status.code, response.status.message) == (7, "decision.untrusted_peer")
    assert gateway.stop() == 0  # flushes the audit log: both refusals are recorded
    with closing(sqlite3.connect(gateway.directory / "audit.db")) as connection:
        reasons = [row[0] for row in connection.execute("SELECT reason FROM dijk_audit")]
    assert reasons == ["decision.untrusted_peer", "decision.untrusted_peer"]


def check(
    gateway: GatewayProcess, method: str, path: str, key: str | None, client: str = "198.51.100.9"
) -> CheckResponse:
    headers = {"host": "api.example"}
    if key:
        headers["x-api-key"] = key
    request = CheckRequest(
        attributes=AttributeContext(
            source=AttributeContextPeer(
                address=Address(socket_address=SocketAddress(address=client, port_value=40000))
            ),
            request=AttributeContextRequest(
                http=AttributeContextHttpRequest(
                    id="", method=method, path=path, host="api.example", headers=headers
                )
            ),
        )
    )
    port = gateway.config["decision"]["grpc"]["port"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return AuthorizationSyncStub(channel).check(request)


def test_grpc_check_allows_with_ok_and_headers_for_upstream(decider: GatewayProcess) -> None:
    response = check(decider, "GET", "/api/items/3", READ_KEY)
    assert response.status is not None
    assert response.status.code == 0  # OK
    assert response.ok_response is not None
    added = {item.header.key: item.header.value for item in response.ok_response.headers}
    assert added["x-dijk-consumer"] == "reader"
    assert response.ok_response.headers_to_remove == ["x-api-key"]


def test_grpc_check_refuses_with_permission_denied_and_the_reason(
    decider: GatewayProcess,
) -> None:
    response = check(decider, "GET", INJECTION, READ_KEY)
    assert response.status is not None
    assert (response.status.code, response.status.message) == (7, "waf.sqli")  # PERMISSION_DENIED
    denied = response.denied_response
    assert denied is not None
    assert denied.status is not None
    assert int(denied.status.code) == 403
    assert json.loads(denied.body)["reason"] == "waf.sqli"
    response = check(decider, "POST", "/api/items", READ_KEY)
    assert response.status is not None
    assert (response.status.code, response.status.message) == (7, "authz.insufficient_scope")
    response = check(decider, "GET", "/api/items", None)
    assert response.status is not None
    assert (response.status.code, response.status.message) == (16, "auth.missing_credentials")
    response = check(decider, "GET", "/api/items", READ_KEY, client="203.0.113.4")
    assert response.status is not None
    assert response.status.message == "net.denied"


def test_forward_auth_never_adopts_the_clients_request_id(decider: GatewayProcess) -> None:
    """Traefik passes the client's headers on: an X-Request-Id among them is the client's."""
    status, headers, _ = ask(
        decider,
        "GET",
        "/forward-auth",
        {
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/api/items",
            "X-Forwarded-For": "198.51.100.21",
            "X-API-Key": READ_KEY,
            "X-Request-Id": "chosen-by-the-client",
        },
    )
    assert status == 200
    assert headers["x-request-id"] != "chosen-by-the-client"
    assert len(headers["x-request-id"]) == 32


def test_auth_request_keeps_the_request_id_nginx_sets(decider: GatewayProcess) -> None:
    nginx_id = "5f0c8a1e9b7d4c3a2e1f0a9b8c7d6e5f"
    status, headers, _ = ask(
        decider,
        "GET",
        "/auth-request",
        {
            "X-Original-Method": "GET",
            "X-Original-URI": "/api/items",
            "X-Real-IP": "198.51.100.22",
            "X-API-Key": READ_KEY,
            "X-Request-Id": nginx_id,
        },
    )
    assert (status, headers["x-request-id"]) == (200, nginx_id)


@pytest.mark.parametrize("named", ["unknown", "198.51.100.23, unknown", "_hidden"])
def test_a_client_address_that_is_not_an_ip_is_refused_not_read_as_the_proxy(
    decider: GatewayProcess, named: str
) -> None:
    status, _, body = traefik(decider, "GET", "/api/items", READ_KEY, client=named)
    assert (status, json.loads(body)["reason"]) == (400, "decision.invalid_client_address")


def test_a_client_on_a_proxy_address_cannot_name_another_client_on_its_left(
    decider: GatewayProcess,
) -> None:
    """decision.proxies are who may ask, not hops to skip: the entry Traefik appended (here
    loopback, a client on the proxy's own host) is the client, whatever stands left of it."""
    status, _, body = traefik(
        decider, "GET", "/api/items", READ_KEY, client="203.0.113.9, 127.0.0.1"
    )
    assert status == 200, body  # 203.0.113.0/24 is denied: it was not taken as the client


def test_an_oversized_grpc_message_is_refused_unread_and_the_gateway_keeps_answering(
    decider: GatewayProcess,
) -> None:
    """grpclib buffers and decodes any announced length: one 200 MB Check held the event
    loop (the inline listener too) for over a minute. Past the body limit plus room for the
    attributes the message is refused from its length prefix."""
    port = decider.config["decision"]["grpc"]["port"]
    size = 4 * 1024 * 1024  # max_body_bytes (1 MiB) + 1 MiB of attributes is the limit
    # Field 1 (attributes), length-delimited, announcing `size` bytes of zeros.
    varint = bytes([0x80 | (size & 0x7F), 0x80 | ((size >> 7) & 0x7F), (size >> 14) & 0x7F])
    payload = b"\x0a" + varint + bytes(size)
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(
            "/envoy.service.auth.v3.Authorization/Check",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as refused:
            call(payload, timeout=20)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    response = check(decider, "GET", "/api/items/3", READ_KEY)
    assert response.status is not None
    assert response.status.code == 0  # still answering, and a normal Check still passes
