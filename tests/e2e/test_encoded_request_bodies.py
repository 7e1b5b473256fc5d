"""Request bodies with a Content-Encoding, through a real gateway process.

The gateway decodes a gzip or deflate body once, within the body limit, and every stage
(client limits, OpenAPI, WAF) reads the decoded JSON; the upstream receives the bytes the
client sent. A body that does not decode, or decodes past the limit, is refused.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config, parse_response, raw_request
from tests.support.upstream import RecordingUpstream

MAX_BODY = 4096
SPEC = """\
openapi: 3.0.3
info: {title: orders, version: "1"}
paths:
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [item]
              properties:
                item: {type: string, maxLength: 40}
                count: {type: integer, minimum: 1, maximum: 10}
      responses:
        "200": {description: ok}
"""


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> GatewayProcess:
    (tmp_path / "orders.openapi.yaml").write_text(SPEC)
    config = base_config(upstream.port, limits={"max_body_bytes": MAX_BODY})
    config["routes"] = [
        {
            "name": "orders",
            "match": {"path_prefix": "/orders"},
            "upstream": "echo",
            "openapi": {"spec": "../orders.openapi.yaml", "mode": "enforce"},
            "waf": {"mode": "block"},
        },
        {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "echo"},
        {
            "name": "all",
            "match": {"path_prefix": "/"},
            "upstream": "echo",
            "waf": {"mode": "block"},
        },
    ]
    return start_gateway(config)


def post(gateway: GatewayProcess, path: str, body: bytes, encoding: str) -> tuple[int, Any]:
    raw = raw_request(
        gateway.port,
        b"POST %b HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n" % path.encode()
        + b"Content-Type: application/json\r\nContent-Encoding: %b\r\n" % encoding.encode()
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body,
    )
    status, headers, payload = parse_response(raw)
    if headers.get("content-type") == "application/problem+json":
        return status, json.loads(payload)
    return status, None


def test_gzip_json_body_is_checked_decoded_and_forwarded_as_sent(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = gzip.compress(json.dumps({"item": "tea", "count": 2}).encode())
    status, problem = post(gateway, "/orders", body, "gzip")
    assert status == 200, problem
    assert recording.requests[0].body == body
    assert recording.requests[0].header("content-encoding") == "gzip"


def test_deflate_and_stacked_codings_are_decoded(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    document = json.dumps({"item": "tea"}).encode()
    assert post(gateway, "/orders", zlib.compress(document), "deflate")[0] == 200
    stacked = gzip.compress(zlib.compress(document))
    assert post(gateway, "/orders", stacked, "deflate, gzip")[0] == 200
    members = gzip.compress(document[:5]) + gzip.compress(document[5:])
    assert post(gateway, "/orders", members, "gzip")[0] == 200
    assert len(recording.requests) == 3


def test_gzip_body_breaking_the_openapi_schema_is_refused_by_openapi(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = gzip.compress(json.dumps({"item": "tea", "admin": True}).encode())
    status, problem = post(gateway, "/orders", body, "gzip")
    assert status == 400
    assert problem["type"].endswith("/openapi.undeclared_property")
    assert recording.raw == b""


def test_gzip_body_carrying_an_attack_is_refused_by_the_waf(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    attack = "' OR 1=1 UNION SELECT password FROM users--"
    body = gzip.compress(json.dumps({"q": attack}).encode())
    status, problem = post(gateway, "/search", body, "gzip")
    assert status == 403, problem
    assert problem["type"].split("/")[-1].startswith("waf.")
    assert recording.raw == b""


def test_gzip_body_decoding_past_the_body_limit_is_refused(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = gzip.compress(json.dumps({"item": "x" * (MAX_BODY + 10)}).encode())
    assert len(body) < MAX_BODY
    status, problem = post(gateway, "/orders", body, "gzip")
    assert status == 413
    assert problem["type"].endswith("/limits.body_too_large")
    assert recording.raw == b""


def test_truncated_or_corrupt_gzip_body_is_refused(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = gzip.compress(json.dumps({"item": "tea"}).encode())
    for broken in (body[:-6], body[:10] + b"\x00" * 12 + body[22:], body + b"trailing"):
        status, problem = post(gateway, "/orders", broken, "gzip")
        assert status == 400, broken
        assert problem["type"].endswith("/limits.body_undecodable")
    assert recording.raw == b""


def test_json_body_in_an_unknown_coding_is_refused_415(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, problem = post(gateway, "/plain", b"\x8b\x02\x80{}\x03", "br")
    assert status == 415
    assert problem["type"].endswith("/limits.unsupported_encoding")
    assert recording.raw == b""
