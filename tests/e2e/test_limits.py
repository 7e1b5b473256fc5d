"""Client limits and upstream failures through a real ``dijk serve`` process.

Sizes (413, 431), JSON shape (400), slow clients (408) and a broken or slow upstream
(502, 504): each answer is an RFC 9457 problem document with its reason code, and where a
request is refused before forwarding the recording upstream proves nothing reached it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway import (
    GatewayProcess,
    base_config,
    free_port,
    parse_response,
    raw_request,
)
from tests.support.upstream import RecordingUpstream

H = b"Host: gw.test\r\n"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    url = f"http://127.0.0.1:{upstream.port}"
    config = base_config(
        upstream.port,
        limits={
            "max_body_bytes": MAX_BODY,
            "max_header_bytes": 4096,
            "max_headers": 20,
            "max_json_depth": 32,
            "header_timeout_s": 0.5,
            "body_timeout_s": 0.5,
        },
        upstreams={
            "echo": {"url": url},
            "down": {"url": f"http://127.0.0.1:{free_port()}", "connect_timeout_s": 1},
            "sluggish": {"url": url, "read_timeout_s": 0.5},
        },
        routes=[
            {"name": "all", "match": {"path_prefix": "/"}, "upstream": "echo"},
            {"name": "down", "match": {"path_prefix": "/down"}, "upstream": "down"},
            {
                "name": "sluggish",
                "match": {"path_prefix": "/sluggish"},
                "upstream": "sluggish",
                "strip_prefix": "/sluggish",
            },
        ],
    )
    process = GatewayProcess(config, tmp_path_factory.mktemp("limits"))
    process.start()
    yield process
    process.stop()


def problem(raw: bytes, status: int, reason: str) -> tuple[dict[str, str], dict[str, Any]]:
    assert raw, "no response"
    code, headers, body = parse_response(raw)
    assert code == status, raw[:400]
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("x-request-id")
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    assert document["type"] == f"https://dijk.dev/problems/{reason}"
    assert document["request_id"] == headers["x-request-id"]
    return headers, document


def exchange_slowly(
    port: int, parts: list[bytes], pause: float, timeout: float = 5.0
) -> tuple[bytes, float]:
    """Send ``parts`` then wait; return the answer and how long it took after the last part."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the gateway answered and closed: read what it said
            time.sleep(pause)
        started = time.monotonic()
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks), time.monotonic() - started


# ---- body size ----------------------------------------------------------------------------------


def test_content_length_over_the_limit_gets_413_before_the_body_is_read(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    # only the head is sent: the answer must not wait for a body that is refused anyway
    raw = raw_request(
        gateway.port, b"POST /upload HTTP/1.1\r\n" + H + b"Content-Length: 10485760\r\n\r\n"
    )
    headers, document = problem(raw, 413, "limits.body_too_large")
    assert str(MAX_BODY) in document["detail"]
    assert headers.get("connection") == "close"
    assert recording.raw == b""


def test_content_length_one_over_the_limit_gets_413_and_upstream_gets_nothing(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = b"a" * (MAX_BODY + 1)
    raw = raw_request(
        gateway.port,
        b"POST /upload HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body) + body,
    )
    problem(raw, 413, "limits.body_too_large")
    assert recording.raw == b""


def test_body_at_the_limit_is_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = b"a" * MAX_BODY
    raw = raw_request(
        gateway.port,
        b"POST /upload HTTP/1.1\r\n"
        + H
        + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body,
    )
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].body == body


def test_three_mib_json_body_sent_in_full_gets_413(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = b'{"data": "' + b"x" * (3 << 20) + b'"}'
    raw = raw_request(
        gateway.port,
        b"POST /api/v1/accounts HTTP/1.1\r\n"
        + H
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body,
    )
    problem(raw, 413, "limits.body_too_large")
    assert recording.raw == b""


def test_chunked_body_over_the_limit_gets_413_and_upstream_gets_nothing(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    chunk = b"b" * 1000
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    raw = raw_request(
        gateway.port,
        b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + chunks,
    )
    _, document = problem(raw, 413, "limits.body_too_large")
    assert str(MAX_BODY) in document["detail"]
    assert recording.raw == b""


def test_chunked_body_within_the_limit_is_forwarded_with_a_content_length(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port,
        b"POST /upload HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n",
    )
    assert parse_response(raw)[0] == 200
    received = recording.requests[0]
    assert received.body == b"wikipedia"
    assert received.header("content-length") == "9"
    assert received.header("transfer-encoding") is None


# ---- header size and count ----------------------------------------------------------------------


def test_headers_over_the_limit_get_431(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port, b"GET /x HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 5000 + b"\r\n\r\n"
    )
    _, document = problem(raw, 431, "limits.headers_too_large")
    assert "4096" in document["detail"]
    assert recording.raw == b""


def test_long_request_line_counts_against_the_header_limit(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(gateway.port, b"GET /" + b"p" * 5000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    problem(raw, 431, "limits.headers_too_large")
    assert recording.raw == b""


def test_many_small_headers_adding_up_over_the_limit_get_431(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (index, b"v" * 300) for index in range(15))
    raw = raw_request(gateway.port, b"GET /x HTTP/1.1\r\n" + H + headers + b"\r\n")
    problem(raw, 431, "limits.headers_too_large")
    assert recording.raw == b""


def test_too_many_headers_get_431(gateway: GatewayProcess, recording: RecordingUpstream) -> None:
    headers = b"".join(b"X-%d: v\r\n" % index for index in range(21))
    raw = raw_request(gateway.port, b"GET /x HTTP/1.1\r\n" + H + headers + b"\r\n")
    _, document = problem(raw, 431, "limits.too_many_headers")
    assert "20" in document["detail"]
    assert recording.raw == b""


def test_headers_just_within_the_limits_are_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    headers = b"".join(b"X-%d: v\r\n" % index for index in range(18))  # + Host + Connection = 20
    raw = raw_request(
        gateway.port, b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\n" + headers + b"\r\n"
    )
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].header("x-17") == "v"


# ---- JSON shape ---------------------------------------------------------------------------------


def _post_json(port: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return raw_request(
        port,
        b"POST /api HTTP/1.1\r\n"
        + H
        + b"Content-Type: "
        + content_type
        + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body,
    )


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"application/json; charset=utf-8", b"application/problem+json"],
)
def test_json_nested_too_deep_gets_400_and_upstream_gets_nothing(
    gateway: GatewayProcess, recording: RecordingUpstream, content_type: bytes
) -> None:
    raw = _post_json(gateway.port, b"[" * 100 + b"]" * 100, content_type)
    problem(raw, 400, "limits.json_too_deep")
    assert recording.raw == b""


def test_json_nested_within_the_limit_is_forwarded(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = b'{"a":' * 31 + b"1" + b"}" * 31
    assert parse_response(_post_json(gateway.port, body))[0] == 200
    assert recording.requests[0].body == body


# ---- slow clients -------------------------------------------------------------------------------


def test_partial_request_line_gets_408_after_the_header_timeout(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw, waited = exchange_slowly(gateway.port, [b"GET /slo"], pause=0)
    problem(raw, 408, "http.header_timeout")
    assert 0.3 < waited < 5
    assert recording.raw == b""


def test_headers_trickling_in_get_408_at_the_header_deadline(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    # each piece arrives well within 0.5 s of the last: the deadline is for the whole head
    parts = [b"GET /x HTTP/1.1\r\n", H] + [b"X-%d: v\r\n" % index for index in range(8)]
    raw, _ = exchange_slowly(gateway.port, parts, pause=0.1)
    problem(raw, 408, "http.header_timeout")
    assert recording.raw == b""


def test_partial_request_after_a_keep_alive_response_gets_408(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw, _ = exchange_slowly(
        gateway.port,
        [b"GET /first HTTP/1.1\r\n" + H + b"\r\n", b"GET /second HTTP/1.1\r\nHo"],
        pause=0.2,
    )
    assert raw.startswith(b"HTTP/1.1 200 ")
    problem(raw[raw.index(b"HTTP/1.1 408 ") :], 408, "http.header_timeout")
    assert [received.target for received in recording.requests] == ["/first"]


def test_partial_request_pipelined_behind_a_slow_one_gets_408(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """Slowloris behind a slow request: the second head still has a deadline."""
    raw, waited = exchange_slowly(
        gateway.port,
        [b"GET /slow?s=0.3 HTTP/1.1\r\n" + H + b"\r\nGET /second HTTP/1.1\r\nHo"],
        pause=0,
        timeout=8,
    )
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    assert b"HTTP/1.1 408 " in raw, raw[-300:]
    problem(raw[raw.index(b"HTTP/1.1 408 ") :], 408, "http.header_timeout")
    assert waited < 6
    assert [received.target for received in recording.requests] == ["/slow?s=0.3"]


def test_body_slower_than_the_body_timeout_gets_408(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw, waited = exchange_slowly(
        gateway.port,
        [b"POST /upload HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc"],
        pause=0,
    )
    headers, _ = problem(raw, 408, "http.body_timeout")
    assert headers.get("connection") == "close"
    assert waited < 5
    assert all(received.target != "/upload" for received in recording.requests)


def test_json_body_slower_than_the_body_timeout_gets_408(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw, _ = exchange_slowly(
        gateway.port,
        [
            b"POST /upload HTTP/1.1\r\n"
            + H
            + b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n[1,"
        ],
        pause=0,
    )
    problem(raw, 408, "http.body_timeout")
    assert recording.raw == b""


def test_idle_connection_is_closed_without_an_answer(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw, waited = exchange_slowly(gateway.port, [], pause=0)
    assert raw == b""
    assert waited < 5


# ---- upstream failures --------------------------------------------------------------------------


def test_unreachable_upstream_gets_502(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(gateway.port, b"GET /down/x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    headers, document = problem(raw, 502, "upstream.connect_failed")
    assert headers.get("retry-after")
    assert "127.0.0.1" not in document["detail"]  # no internal addresses in denials


def test_slow_upstream_gets_504(gateway: GatewayProcess, recording: RecordingUpstream) -> None:
    started = time.monotonic()
    raw = raw_request(
        gateway.port, b"GET /sluggish/slow?s=3 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    )
    waited = time.monotonic() - started
    problem(raw, 504, "upstream.timeout")  # the upstream would have answered 200 at 3 s
    assert waited > 0.4
    assert recording.requests[0].target == "/slow?s=3"


def test_upstream_within_the_read_timeout_is_served(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port, b"GET /sluggish/slow?s=0.1 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    )
    assert parse_response(raw)[0] == 200
