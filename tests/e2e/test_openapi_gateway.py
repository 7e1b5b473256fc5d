"""The OpenAPI stages in a real gateway process, in front of the recording upstream."""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

SPEC = """\
openapi: 3.0.3
info: {title: echo, version: "1"}
paths:
  /items:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string, maxLength: 20}
                count: {type: integer, minimum: 0}
      responses:
        "200":
          description: the echo
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Echo"}
  /items/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: the echo
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Echo"}
  /status/{code}:
    get:
      parameters:
        - {name: code, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
components:
  schemas:
    Echo:
      type: object
      properties:
        method: {type: string}
        target: {type: string}
"""


def call(
    gateway: GatewayProcess,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    headers = {}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    connection.close()
    return result


def start_with(
    start_gateway: Callable[..., GatewayProcess],
    upstream: RecordingUpstream,
    tmp_path: Path,
    **openapi: Any,
) -> GatewayProcess:
    (tmp_path / "echo.openapi.yaml").write_text(SPEC)
    config = base_config(upstream.port)
    # relative to the configuration file, which the harness writes into tmp_path/gwN/
    config["routes"][0]["openapi"] = {"spec": "../echo.openapi.yaml", **openapi}
    return start_gateway(config)


@pytest.fixture
def enforcing(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> GatewayProcess:
    return start_with(start_gateway, upstream, tmp_path, mode="enforce", response="strip")


def problem(result: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    status, headers, body = result
    assert headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    return document


def test_refusals_never_reach_the_upstream(
    enforcing: GatewayProcess, recording: RecordingUpstream
) -> None:
    result = call(enforcing, "GET", "/admin-export")
    assert result[0] == 404
    assert problem(result)["reason"] == "openapi.unknown_path"
    result = call(enforcing, "DELETE", "/items/1")
    assert result[0] == 405
    assert result[1]["allow"] == "GET, HEAD"
    assert problem(result)["reason"] == "openapi.method_not_allowed"
    result = call(enforcing, "GET", "/items/not-a-number")
    assert result[0] == 400
    assert problem(result)["detail"] == "path parameter /id: must be of type integer (type)"
    result = call(enforcing, "POST", "/items", {"name": 42})
    assert result[0] == 400
    assert problem(result)["detail"] == "request body /name: must be of type string (type)"
    result = call(enforcing, "POST", "/items", {"name": "a", "role": "admin", "balance": 1})
    assert result[0] == 400
    assert problem(result)["reason"] == "openapi.undeclared_property"
    result = call(enforcing, "POST", "/items", b"name=a", "text/plain")
    assert result[0] == 415
    assert problem(result)["reason"] == "openapi.unsupported_media_type"
    assert recording.requests == []


def test_valid_requests_pass_and_undeclared_response_fields_are_stripped(
    enforcing: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, headers, body = call(enforcing, "POST", "/items", {"name": "a", "count": 2})
    assert status == 200
    # the recording upstream answers {method, target, headers, body_length}: the document
    # declares only method and target
    assert json.loads(body) == {"method": "POST", "target": "/items"}
    assert int(headers["content-length"]) == len(body)
    assert recording.requests[0].body == b'{"name": "a", "count": 2}'
    assert recording.requests[0].header("accept-encoding") is None


def test_undeclared_response_status_is_502_in_enforce(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> None:
    gateway = start_with(start_gateway, upstream, tmp_path, response="enforce")
    assert call(gateway, "GET", "/status/200")[0] == 200
    result = call(gateway, "GET", "/status/503")
    assert result[0] == 502
    document = problem(result)
    assert document["reason"] == "openapi.invalid_response"
    assert "503" not in document["detail"]
    # the connection that carried the refused response went back to the pool unharmed
    assert call(gateway, "GET", "/status/200")[0] == 200


def test_monitor_mode_forwards_and_records(
    start_gateway: Callable[..., GatewayProcess],
    upstream: RecordingUpstream,
    recording: RecordingUpstream,
    tmp_path: Path,
) -> None:
    gateway = start_with(start_gateway, upstream, tmp_path, mode="monitor")
    status, _, _ = call(gateway, "POST", "/items", {"name": 42})
    assert status == 200
    assert len(recording.requests) == 1
    with urllib.request.urlopen(
        f"http://127.0.0.1:{gateway.admin_port}/metrics", timeout=5
    ) as response:
        metrics = response.read().decode()
    assert 'reason="openapi.invalid_request",route="all",status="200"' in metrics
