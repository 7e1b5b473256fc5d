"""Proxying and routing through a real ``dijk serve`` process.

Every test talks raw HTTP/1.1 over a loopback socket to the gateway and checks both what
the client gets back and what the recording upstream received, byte for byte where it
matters (hop-by-hop headers, forwarding headers, Host, request id, query string).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

HOST = "gw.test:8080"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


# ---- a tiny HTTP/1.1 client that keeps framing visible ------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: str | None = HOST,
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body and not any(
        name.lower() in ("content-length", "transfer-encoding") for name, _ in headers or []
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(stream: BinaryIO, method: str = "GET") -> Response:
    """Read exactly one response; raises EOFError when the server closed first."""
    status_line = stream.readline()
    if not status_line:
        raise EOFError("connection closed before a response")
    status = int(status_line.split(b" ", 2)[1])
    headers: list[tuple[str, str]] = []
    while True:
        line = stream.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    names = {name for name, _ in headers}
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "transfer-encoding" in names:
        parts = []
        while True:
            size = int(stream.readline().split(b";")[0], 16)
            if size == 0:
                assert stream.readline() == b"\r\n"
                break
            parts.append(stream.read(size))
            assert stream.read(2) == b"\r\n"
        body = b"".join(parts)
    elif "content-length" in names:
        length = int(next(value for name, value in headers if name == "content-length"))
        body = stream.read(length)
        assert len(body) == length, "body cut short"
    else:
        body = stream.read()
    return Response(status, headers, body)


class Client:
    """One client connection, to send several requests on it."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.stream = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, method: str = "GET") -> Response:
        return read_response(self.stream, method)

    def exchange(self, method: str, target: str, **kwargs: Any) -> Response:
        self.send(request(method, target, **kwargs))
        return self.response(method)

    def closed_by_peer(self) -> bool:
        """True if the server closes the connection within a few seconds (well before any
        keep-alive timeout)."""
        self.sock.settimeout(5)
        try:
            return self.stream.read(1) == b""
        except (TimeoutError, ConnectionResetError):
            return False

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def fetch(port: int, method: str, target: str, **kwargs: Any) -> Response:
    client = Client(port)
    try:
        return client.exchange(method, target, **kwargs)
    finally:
        client.close()


def assert_problem(response: Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status == status, response.body[:300]
    assert response.header("content-type") == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"] == f"https://dijk.dev/problems/{reason}"
    assert problem["request_id"] == response.header("x-request-id")
    return problem


def start(config: dict[str, Any], directory: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(config, directory)
    process.start()
    yield process
    process.stop()


# ---- gateways -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    """Catch-all route to the echo upstream, plus routes for the three Host modes."""
    url = f"http://127.0.0.1:{upstream.port}"
    config = base_config(
        upstream.port,
        upstreams={
            "echo": {"url": url},
            "preserving": {"url": url, "host": "preserve"},
            "fixed": {"url": url, "host": "api.internal.test"},
        },
        routes=[
            {"name": "all", "match": {"path_prefix": "/"}, "upstream": "echo"},
            {
                "name": "host-preserve",
                "match": {"path_prefix": "/host/preserve"},
                "upstream": "preserving",
                "strip_prefix": "/host/preserve",
            },
            {
                "name": "host-fixed",
                "match": {"path_prefix": "/host/fixed"},
                "upstream": "fixed",
                "strip_prefix": "/host/fixed",
            },
        ],
    )
    yield from start(config, tmp_path_factory.mktemp("proxy"))


@pytest.fixture(scope="module")
def trusting_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    """Trusts loopback as a proxy in front of it and logs one line per request."""
    config = base_config(
        upstream.port, trusted_proxies=["127.0.0.0/8"], logging={"access_log": True}
    )
    yield from start(config, tmp_path_factory.mktemp("trusting"))


@pytest.fixture(scope="module")
def routed(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    """No catch-all: exact, prefix, template and strip_prefix routes only."""
    config = base_config(
        upstream.port,
        routes=[
            {
                "name": "exact",
                "match": {"path": "/exact", "methods": ["GET", "PUT"]},
                "upstream": "echo",
            },
            {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "echo"},
            {"name": "api-v2", "match": {"path_prefix": "/api/v2/"}, "upstream": "echo"},
            {
                "name": "user",
                "match": {"path_template": "/users/{id}", "methods": ["GET", "DELETE"]},
                "upstream": "echo",
            },
            {
                "name": "user-orders",
                "match": {"path_template": "/users/{id}/orders/{order}"},
                "upstream": "echo",
            },
            {"name": "me", "match": {"path": "/users/me"}, "upstream": "echo"},
            {
                "name": "legacy",
                "match": {"path_prefix": "/legacy"},
                "upstream": "echo",
                "strip_prefix": "/legacy",
            },
        ],
    )
    yield from start(config, tmp_path_factory.mktemp("routed"))


def only(recording: RecordingUpstream) -> Any:
    assert len(recording.requests) == 1, [r.target for r in recording.requests]
    return recording.requests[0]


# ---- hop-by-hop headers -------------------------------------------------------------------------


def test_hop_by_hop_request_headers_are_not_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(
        gateway.port,
        "GET",
        "/echo",
        headers=[
            ("Connection", "keep-alive, X-Private-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic c2VjcmV0OnNlY3JldA=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-Private-Hop", "for-the-gateway-only"),
            ("X-End-To-End", "kept"),
        ],
    )
    assert response.status == 200
    received = only(recording)
    names = {name for name, _ in received.headers}
    for hop in (
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-private-hop",
    ):
        assert hop not in names, hop
    assert received.header("x-end-to-end") == "kept"
    # the gateway's own connection to the upstream may carry a Connection header, but never
    # the client's tokens
    assert "x-private-hop" not in (received.header("connection") or "").lower()
    assert b"c2VjcmV0" not in recording.raw
    assert b"for-the-gateway-only" not in recording.raw


@pytest.mark.parametrize("body", [b"", b"abc"], ids=["without-body", "with-body"])
def test_upgrade_request_is_refused_with_501_and_not_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream, body: bytes
) -> None:
    client = Client(gateway.port)
    try:
        client.send(
            request(
                "POST" if body else "GET",
                "/ws",
                headers=[
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Version", "13"),
                ],
                body=body,
            )
            + request("GET", "/after-upgrade")
        )
        assert_problem(client.response(), 501, "http.upgrade_unsupported")
        assert client.closed_by_peer()
    finally:
        client.close()
    assert recording.raw == b""


def test_hop_by_hop_response_headers_are_not_returned(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(gateway.port, "GET", "/hop")
    assert response.status == 200
    names = {name for name, _ in response.headers}
    assert "x-secret-hop" not in names  # listed in the upstream's Connection header
    assert "keep-alive" not in names
    assert "x-secret-hop" not in (response.header("connection") or "")
    assert response.header("content-type") == "application/json"
    assert response.json()["target"] == "/hop"


# ---- forwarding headers -------------------------------------------------------------------------


def test_forwarding_headers_are_added(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    assert fetch(gateway.port, "GET", "/fwd").status == 200
    received = only(recording)
    assert received.header_values("x-forwarded-for") == ["127.0.0.1"]
    assert received.header_values("x-forwarded-proto") == ["http"]
    assert received.header_values("x-forwarded-host") == [HOST]


def test_client_forwarding_headers_are_dropped_from_an_untrusted_peer(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(
        gateway.port,
        "GET",
        "/fwd",
        headers=[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "for=6.6.6.6;proto=https"),
            ("X-Real-IP", "6.6.6.6"),
        ],
    )
    assert response.status == 200
    received = only(recording)
    assert received.header_values("x-forwarded-for") == ["127.0.0.1"]
    assert received.header_values("x-forwarded-proto") == ["http"]
    assert received.header_values("x-forwarded-host") == [HOST]
    assert received.header("forwarded") is None
    assert received.header("x-real-ip") is None
    assert b"6.6.6.6" not in recording.raw
    assert b"evil.example" not in recording.raw


def test_client_forwarding_headers_are_kept_and_appended_from_a_trusted_proxy(
    trusting_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(
        trusting_gateway.port,
        "GET",
        "/fwd",
        headers=[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "api.example"),
        ],
    )
    assert response.status == 200
    received = only(recording)
    assert received.header_values("x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert received.header_values("x-forwarded-proto") == ["https"]
    assert received.header_values("x-forwarded-host") == ["api.example"]


def _access_line(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for line in gateway.logs().splitlines():
            if request_id in line:
                event: dict[str, Any] = json.loads(line)
                if event.get("event") == "request":
                    return event
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}:\n{gateway.logs()[-2000:]}")


@pytest.mark.parametrize(
    ("forwarded_for", "expected_client"),
    [
        ([("X-Forwarded-For", "203.0.113.7")], "203.0.113.7"),
        # the left-most entries are whatever the client wrote: only the right-most
        # untrusted entry counts
        ([("X-Forwarded-For", "6.6.6.6, 203.0.113.7")], "203.0.113.7"),
        ([("X-Forwarded-For", "not-an-ip, 203.0.113.7, 127.0.0.2")], "203.0.113.7"),
        # two header lines are one list (RFC 9110 §5.3): the proxy's line is the last one
        ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7")], "203.0.113.7"),
    ],
    ids=["single", "spoofed-left-most", "garbage-left-most", "two-header-lines"],
)
def test_client_address_behind_a_trusted_proxy_is_the_right_most_untrusted_entry(
    trusting_gateway: GatewayProcess,
    recording: RecordingUpstream,
    forwarded_for: list[tuple[str, str]],
    expected_client: str,
) -> None:
    response = fetch(trusting_gateway.port, "GET", "/who", headers=forwarded_for)
    assert response.status == 200
    request_id = response.header("x-request-id")
    assert request_id
    assert _access_line(trusting_gateway, request_id)["client_ip"] == expected_client


# ---- Host header per upstream -------------------------------------------------------------------


def test_host_defaults_to_the_upstream_authority(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    assert fetch(gateway.port, "GET", "/h").status == 200
    assert only(recording).header_values("host") == [f"127.0.0.1:{recording.port}"]


def test_host_preserve_sends_the_client_host(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    assert fetch(gateway.port, "GET", "/host/preserve/h").status == 200
    received = only(recording)
    assert received.target == "/h"
    assert received.header_values("host") == [HOST]


def test_host_can_be_a_fixed_name(gateway: GatewayProcess, recording: RecordingUpstream) -> None:
    assert fetch(gateway.port, "GET", "/host/fixed/h").status == 200
    received = only(recording)
    assert received.target == "/h"
    assert received.header_values("host") == ["api.internal.test"]
    assert received.header_values("x-forwarded-host") == [HOST]


# ---- request id ---------------------------------------------------------------------------------


def test_request_id_is_generated_and_passed_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(gateway.port, "GET", "/id")
    request_id = response.header("x-request-id")
    assert request_id is not None
    assert GENERATED_ID.fullmatch(request_id)
    assert response.header_values("x-request-id") == [request_id]
    assert only(recording).header_values("x-request-id") == [request_id]


@pytest.mark.parametrize(
    "incoming", ["abc-123_X.y:z", "a" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e"]
)
def test_valid_incoming_request_id_from_a_trusted_proxy_is_kept(
    trusting_gateway: GatewayProcess, recording: RecordingUpstream, incoming: str
) -> None:
    response = fetch(trusting_gateway.port, "GET", "/id", headers=[("X-Request-Id", incoming)])
    assert response.header_values("x-request-id") == [incoming]
    assert only(recording).header_values("x-request-id") == [incoming]


@pytest.mark.parametrize("incoming", ["abc-123_X.y:z", "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_advisory_request_id_chosen_by_a_direct_client_is_replaced(
    gateway: GatewayProcess, recording: RecordingUpstream, incoming: str
) -> None:
    response = fetch(gateway.port, "GET", "/id", headers=[("X-Request-Id", incoming)])
    request_id = response.header("x-request-id")
    assert request_id is not None
    assert GENERATED_ID.fullmatch(request_id)
    assert only(recording).header_values("x-request-id") == [request_id]
    assert incoming.encode() not in recording.raw


@pytest.mark.parametrize(
    "incoming",
    ["a" * 129, "has space", "<script>", "semi;colon", 'quote"d', "caf\xe9", ""],
    ids=["too-long", "space", "markup", "semicolon", "quote", "latin-1", "empty"],
)
def test_invalid_incoming_request_id_is_replaced(
    gateway: GatewayProcess, recording: RecordingUpstream, incoming: str
) -> None:
    response = fetch(gateway.port, "GET", "/id", headers=[("X-Request-Id", incoming)])
    assert response.status == 200
    request_id = response.header("x-request-id")
    assert request_id is not None
    assert GENERATED_ID.fullmatch(request_id)
    assert only(recording).header_values("x-request-id") == [request_id]
    assert incoming.encode("latin-1") not in recording.raw or not incoming


def test_request_id_is_on_denials_and_protocol_errors(
    routed: GatewayProcess, recording: RecordingUpstream
) -> None:
    not_found = fetch(routed.port, "GET", "/nowhere", headers=[("X-Request-Id", "trace-404")])
    request_id = not_found.header("x-request-id")
    assert request_id is not None
    assert GENERATED_ID.fullmatch(request_id)
    assert assert_problem(not_found, 404, "route.not_found")["request_id"] == request_id
    malformed = fetch(
        routed.port, "GET", "/x", headers=[("X-Request-Id", "trace-400"), ("Bad Name", "v")]
    )
    assert malformed.status == 400
    assert malformed.header("x-request-id")
    assert recording.raw == b""


# ---- message forms ------------------------------------------------------------------------------


def test_query_string_is_forwarded_unchanged(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    query = "a=1&b=%2F&c=%20x+y&empty=&a=2&flag&semi;colon=%7E&enc=%e2%82%ac"
    assert fetch(gateway.port, "GET", f"/q?{query}").status == 200
    assert only(recording).target == f"/q?{query}"


def test_head_gets_headers_without_a_body_and_the_connection_stays_usable(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        head = client.exchange("HEAD", "/head")
        assert head.status == 200
        assert head.header("content-type") == "application/json"
        assert int(head.header("content-length") or "0") > 0  # the size a GET would get
        follow_up = client.exchange("GET", "/after-head")
        assert follow_up.status == 200
        assert follow_up.json()["target"] == "/after-head"  # nothing stray was left in between
    finally:
        client.close()
    assert [r.method for r in recording.requests] == ["HEAD", "GET"]


def test_204_has_no_body_and_the_connection_stays_usable(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        client.send(request("GET", "/status/204"))
        head = client.stream.readline() + b"".join(iter(client.stream.readline, b"\r\n"))
        assert head.startswith(b"HTTP/1.1 204 ")
        lowered = head.lower()
        # RFC 9110 §8.6: no Content-Length (and no Transfer-Encoding) on a 204
        assert b"content-length" not in lowered
        assert b"transfer-encoding" not in lowered
        assert b"x-request-id" in lowered
        follow_up = client.exchange("GET", "/after-204")
        assert follow_up.status == 200
        assert follow_up.json()["target"] == "/after-204"
    finally:
        client.close()


def test_304_has_no_body_and_the_connection_stays_usable(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        response = client.exchange("GET", "/status/304", headers=[("If-None-Match", '"v1"')])
        assert response.status == 304
        assert response.header("transfer-encoding") is None
        follow_up = client.exchange("GET", "/after-304")
        assert follow_up.json()["target"] == "/after-304"
    finally:
        client.close()
    assert recording.requests[0].header("if-none-match") == '"v1"'


def test_chunked_upstream_response_is_reframed(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(gateway.port, "GET", "/chunked?n=7")
    assert response.status == 200
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.body == b"".join(b"chunk-%d\n" % index for index in range(7))


def test_chunked_upstream_response_to_an_http10_client_is_delimited_by_close(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(gateway.port, "GET", "/chunked?n=3", version="1.0")
    assert response.status == 200
    assert response.header("transfer-encoding") is None
    assert response.header("connection") == "close"
    assert response.body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_five_mib_response_streams_intact(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port, timeout=20)
    try:
        response = client.exchange("GET", "/big?mb=5")
        assert response.status == 200
        assert response.header("content-length") == str(5 * 1024 * 1024)
        assert len(response.body) == 5 * 1024 * 1024
        assert response.body.count(b"x") == 5 * 1024 * 1024
        assert client.exchange("GET", "/after-big").status == 200
    finally:
        client.close()


def test_request_body_at_the_default_limit_streams_intact(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    response = fetch(
        gateway.port,
        "PUT",
        "/upload",
        headers=[("Content-Type", "application/octet-stream")],
        body=body,
    )
    assert response.status == 200
    assert response.json()["body_length"] == len(body)
    received = only(recording)
    assert received.body == body
    assert received.header("content-length") == str(len(body))


def test_keep_alive_serves_several_requests_on_one_connection(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        for index in range(5):
            response = client.exchange("GET", f"/k/{index}")
            assert response.status == 200
            assert response.json()["target"] == f"/k/{index}"
            assert response.header("connection") != "close"
        response = client.exchange("GET", "/k/last", headers=[("Connection", "close")])
        assert response.status == 200
        assert response.header("connection") == "close"
        assert client.closed_by_peer()
    finally:
        client.close()
    assert [r.target for r in recording.requests] == [*(f"/k/{i}" for i in range(5)), "/k/last"]


def test_http10_request_is_answered_and_closed(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        response = client.exchange("GET", "/old", version="1.0", host=None)
        assert response.status == 200
        assert response.header("connection") == "close"
        assert client.closed_by_peer()
    finally:
        client.close()
    assert only(recording).target == "/old"


def test_http10_keep_alive_is_honoured(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        for index in range(2):
            response = client.exchange(
                "GET", f"/old/{index}", version="1.0", headers=[("Connection", "keep-alive")]
            )
            assert response.status == 200
            assert response.header("connection") == "keep-alive"
    finally:
        client.close()


def test_pipelined_requests_are_answered_in_order(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        # the first is the slowest: answers must still come back in request order
        client.send(
            request("GET", "/slow?s=0.3")
            + request("POST", "/p/2", body=b"two")
            + request("HEAD", "/p/3")
            + request("GET", "/p/4")
        )
        first = client.response()
        second = client.response()
        third = client.response("HEAD")
        fourth = client.response()
    finally:
        client.close()
    assert first.json()["target"] == "/slow?s=0.3"
    assert second.json() == {**second.json(), "target": "/p/2", "method": "POST", "body_length": 3}
    assert third.status == 200
    assert third.body == b""
    assert fourth.json()["target"] == "/p/4"
    assert len({r.header("x-request-id") for r in (first, second, third, fourth)}) == 4


def test_many_pipelined_requests_with_bodies_are_all_answered_in_order(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """More than the server queues at once: reading pauses and resumes without loss."""
    client = Client(gateway.port, timeout=10)
    try:
        client.send(b"".join(request("GET", f"/n/{index}") for index in range(60)))
        for index in range(60):
            assert client.response().json()["target"] == f"/n/{index}"
        body = b"y" * 70_000  # several socket reads each
        client.send(b"".join(request("POST", f"/b/{index}", body=body) for index in range(20)))
        for index in range(20):
            answer = client.response().json()
            assert (answer["target"], answer["body_length"]) == (f"/b/{index}", len(body))
    finally:
        client.close()
    assert len(recording.requests) == 80


def test_malformed_request_pipelined_behind_another_is_answered_in_turn_then_closed(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        started = time.monotonic()
        client.send(
            request("GET", "/slow?s=0.3")
            + b"GET /smuggled HTTP/1.1\r\nHost: gw.test\r\nBad Name: v\r\n\r\n"
        )
        first = client.response()
        assert first.status == 200
        assert first.json()["target"] == "/slow?s=0.3"
        assert_problem(client.response(), 400, "http.malformed")
        assert client.closed_by_peer()
        assert time.monotonic() - started < 6
    finally:
        client.close()
    assert [r.target for r in recording.requests] == ["/slow?s=0.3"]
    assert b"/smuggled" not in recording.raw


def test_client_that_half_closes_gets_its_answers_then_the_connection_closes(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """Like ``printf 'GET / ...' | nc host port``: the client sends, shuts down its
    write side and reads until the server closes. It must not wait for the keep-alive
    timeout."""
    client = Client(gateway.port)
    try:
        started = time.monotonic()
        client.send(request("GET", "/slow?s=0.2") + request("GET", "/half/2"))
        client.sock.shutdown(socket.SHUT_WR)
        assert client.response().json()["target"] == "/slow?s=0.2"
        assert client.response().json()["target"] == "/half/2"
        assert client.closed_by_peer()
        assert time.monotonic() - started < 6
    finally:
        client.close()


def test_half_closed_client_gets_the_answer_to_a_forwarded_request_before_a_cut_head(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """Found by live fuzzing: a complete request, the start of a second head, then the
    client's FIN. The first request had been forwarded; its answer was dropped and the
    connection closed at once, so the upstream acted on a request the client never heard
    back about."""
    client = Client(gateway.port)
    try:
        client.send(request("GET", "/slow?s=0.2") + b"GET /never HTTP/1.1\r\nHost: a\r")
        client.sock.shutdown(socket.SHUT_WR)
        assert client.response().json()["target"] == "/slow?s=0.2"
        assert client.closed_by_peer()
    finally:
        client.close()
    assert [r.target for r in recording.requests] == ["/slow?s=0.2"]


def test_expect_100_continue_is_answered_before_the_body(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        client.send(
            request(
                "POST",
                "/upload",
                headers=[
                    ("Expect", "100-continue"),
                    ("Content-Length", "5"),
                    ("Content-Type", "text/plain"),
                ],
            )
        )
        interim = client.response()
        assert interim.status == 100
        client.send(b"hello")
        response = client.response()
    finally:
        client.close()
    assert response.status == 200
    assert response.json()["body_length"] == 5
    received = only(recording)
    assert received.body == b"hello"
    assert received.header("expect") is None


def test_expect_100_continue_over_the_limit_is_refused_without_continue(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    client = Client(gateway.port)
    try:
        client.send(
            request(
                "POST",
                "/upload",
                headers=[("Expect", "100-continue"), ("Content-Length", str(2 << 20))],
            )
        )
        response = client.response()
    finally:
        client.close()
    assert_problem(response, 413, "limits.body_too_large")
    assert recording.raw == b""


def test_unsupported_expectation_gets_417(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    response = fetch(gateway.port, "POST", "/upload", headers=[("Expect", "magic")], body=b"abc")
    assert_problem(response, 417, "http.expectation_failed")
    assert recording.raw == b""


# ---- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("GET", "/exact", "/exact"),
        ("PUT", "/exact", "/exact"),
        ("GET", "/api", "/api"),
        ("GET", "/api/", "/api/"),
        ("POST", "/api/anything/deeper?x=1", "/api/anything/deeper?x=1"),
        ("GET", "/users/42", "/users/42"),
        ("DELETE", "/users/42", "/users/42"),
        ("GET", "/users/me", "/users/me"),
        ("GET", "/users/7/orders/9", "/users/7/orders/9"),
        ("GET", "/legacy/v1/thing?q=1", "/v1/thing?q=1"),
        ("GET", "/legacy", "/"),
        ("GET", "/legacy/", "/"),
    ],
)
def test_matching_routes_are_forwarded(
    routed: GatewayProcess, recording: RecordingUpstream, method: str, path: str, target: str
) -> None:
    response = fetch(routed.port, method, path, body=b"{}" if method in ("POST", "PUT") else b"")
    assert response.status == 200, response.body
    assert only(recording).target == target


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/apix",
        "/api-v1",
        "/exact/more",
        "/exactly",
        "/users",
        "/users/",
        "/users/1/2",
        "/legacyx",
        "/API",
    ],
)
def test_unmatched_path_gets_404_problem_and_is_not_forwarded(
    routed: GatewayProcess, recording: RecordingUpstream, path: str
) -> None:
    problem = assert_problem(fetch(routed.port, "GET", path), 404, "route.not_found")
    assert problem["title"] == "Not Found"
    assert recording.raw == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("POST", "/exact", "GET, HEAD, PUT"), ("PUT", "/users/42", "DELETE, GET, HEAD")],
)
def test_method_not_allowed_gets_405_with_allow(
    routed: GatewayProcess, recording: RecordingUpstream, method: str, path: str, allow: str
) -> None:
    response = fetch(routed.port, method, path, body=b"{}")
    assert_problem(response, 405, "route.method_not_allowed")
    assert response.header("allow") == allow
    assert recording.raw == b""


def test_head_is_allowed_where_get_is(routed: GatewayProcess, recording: RecordingUpstream) -> None:
    assert fetch(routed.port, "HEAD", "/exact").status == 200
    assert only(recording).method == "HEAD"


def test_route_is_matched_on_the_normalised_path(
    routed: GatewayProcess, recording: RecordingUpstream
) -> None:
    # /apix/../api/x normalises to /api/x: matched and forwarded as that one path
    assert fetch(routed.port, "GET", "/apix/../api//x").status == 200
    assert only(recording).target == "/api/x"
