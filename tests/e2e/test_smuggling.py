"""Request smuggling and ambiguous framing: refused with 400 and never forwarded.

Each case is sent raw over a socket to a real gateway process; the recording upstream
proves that not a single byte reached the upstream.
"""

from __future__ import annotations

import json

import pytest

from tests.support.gateway import parse_response, raw_request

H = b"Host: gw.test\r\n"

AMBIGUOUS: dict[str, bytes] = {
    "content_length_and_transfer_encoding": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer_encoding_and_content_length": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_content_length_equal": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_content_length_different": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "content_length_list": b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "content_length_plus_sign": b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc",
    "content_length_negative": b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "content_length_hex": b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc",
    "malformed_chunk_size": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
    "chunk_size_trailing_space": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk_missing_crlf": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    "transfer_encoding_unknown": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "transfer_encoding_chunked_not_last": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "transfer_encoding_space_before_colon": b"POST /x HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "transfer_encoding_in_http10": b"POST /x HTTP/1.0\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obsolete_line_folding": b"GET /x HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "bare_lf_line_endings": b"GET /x HTTP/1.1\nHost: gw.test\nX-A: b\n\n",
    "bare_cr_in_header": b"GET /x HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n",
    "nul_in_header": b"GET /x HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n",
    "space_in_header_name": b"GET /x HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n",
    "absolute_form_other_host": b"GET http://evil.example/x HTTP/1.1\r\n" + H + b"\r\n",
    "absolute_form_userinfo": b"GET http://gw.test@evil.example/x HTTP/1.1\r\n" + H + b"\r\n",
    "missing_host_http11": b"GET /x HTTP/1.1\r\n\r\n",
    "two_host_headers": b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "asterisk_form": b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
    "invalid_http_version": b"GET /x HTTP/1.7\r\n" + H + b"\r\n",
    "encoded_slash_in_path": b"GET /a%2f..%2fadmin HTTP/1.1\r\n" + H + b"\r\n",
    "path_above_root": b"GET /../etc/passwd HTTP/1.1\r\n" + H + b"\r\n",
    "backslash_in_path": b"GET /a\\..\\admin HTTP/1.1\r\n" + H + b"\r\n",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):  # type: ignore[no-untyped-def]
    from tests.support.gateway import GatewayProcess, base_config

    process = GatewayProcess(base_config(upstream.port), tmp_path_factory.mktemp("smuggling"))
    process.start()
    yield process
    process.stop()


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_ambiguous_request_is_refused_with_400_and_never_forwarded(name, gateway, recording):  # type: ignore[no-untyped-def]
    raw = raw_request(gateway.port, AMBIGUOUS[name])
    status, headers, body = parse_response(raw)
    assert status == 400, raw[:300]
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("x-request-id")
    problem = json.loads(body)
    assert problem["status"] == 400
    assert problem["type"].startswith("https://dijk.dev/problems/")
    assert recording.raw == b"", f"{name}: bytes reached the upstream"


def test_smuggled_second_request_is_not_forwarded(gateway, recording):  # type: ignore[no-untyped-def]
    """CL.TE: a front end honouring CL would pass the 'GET /admin' prefix to the upstream."""
    attack = (
        b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /admin HTTP/1.1\r\nX: y"
    )
    raw = raw_request(gateway.port, attack)
    assert parse_response(raw)[0] == 400
    assert raw.count(b"HTTP/1.1 ") == 1
    assert b"/admin" not in recording.raw


def test_well_formed_chunked_request_is_forwarded_once(gateway, recording):  # type: ignore[no-untyped-def]
    raw = raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
    )
    status, _, body = parse_response(raw)
    assert status == 200
    assert json.loads(body)["body_length"] == 5
    assert len(recording.requests) == 1
    assert recording.requests[0].body == b"abcde"


def test_absolute_form_naming_the_host_is_served_as_its_path(gateway, recording):  # type: ignore[no-untyped-def]
    raw = raw_request(
        gateway.port, b"GET http://gw.test/ok HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    )
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].target == "/ok"


def test_route_confusion_with_dot_segments_forwards_the_normalised_path(gateway, recording):  # type: ignore[no-untyped-def]
    raw = raw_request(
        gateway.port, b"GET /public/%2e%2e/admin//x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    )
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].target == "/admin/x"
