"""The OpenAPI-aware WAF in a real gateway: a route with both ``openapi:`` and ``waf:``.

Fields the document constrains (an enum, a uuid, an integer) are left alone by the attack
detector once the request conforms; free text is inspected as always; a payload in a
constrained field does not conform and the contract refuses it first.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

SPEC = """\
openapi: 3.0.3
info: {title: diagnostics, version: "1"}
paths:
  /checks:
    post:
      parameters:
        - {name: probe, in: query, schema: {type: string, enum: [uptime, whoami]}}
      requestBody:
        required: true
        content:
          application/json: {schema: {$ref: "#/components/schemas/Check"}}
      responses:
        "200": {description: ok}
components:
  schemas:
    Check:
      type: object
      required: [command]
      properties:
        command: {type: string, enum: [uptime, whoami, ifconfig]}
        host: {type: string, format: uuid}
        count: {type: integer, minimum: 1}
        note: {type: string, maxLength: 200}
"""

HOST = "123e4567-e89b-12d3-a456-426614174000"


def call(gateway: GatewayProcess, target: str, body: Any) -> tuple[int, dict[str, Any] | None]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request(
        "POST", target, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    if response.getheader("content-type") == "application/problem+json":
        document: dict[str, Any] = json.loads(payload)
        return response.status, document
    return response.status, None


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> GatewayProcess:
    (tmp_path / "checks.openapi.yaml").write_text(SPEC)
    config = base_config(upstream.port)
    config["routes"] = [
        {
            "name": "checks",
            "match": {"path_prefix": "/checks"},
            "upstream": "echo",
            # relative to the configuration file, which the harness writes into tmp_path/gwN/
            "openapi": {"spec": "../checks.openapi.yaml", "mode": "enforce"},
            "waf": {"mode": "block"},
        },
        {
            "name": "unchecked",
            "match": {"path_prefix": "/unchecked"},
            "upstream": "echo",
            "waf": {"mode": "block"},
        },
    ]
    return start_gateway(config)


def test_constrained_values_pass_free_text_is_inspected_and_the_contract_comes_first(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    # valid integer, enum and uuid fields, ordinary text: through
    valid = {"command": "uptime", "host": HOST, "count": 3, "note": "weekly check"}
    assert call(gateway, "/checks", valid) == (200, None)
    # a payload in free text: the WAF refuses it
    status, problem = call(
        gateway, "/checks", {"command": "uptime", "note": "1' UNION SELECT password FROM users--"}
    )
    assert status == 403
    assert problem is not None
    assert problem["reason"] == "waf.sqli"
    # a payload in the integer, uuid or enum field: it does not conform, 400 from the contract
    for field in ("count", "host", "command"):
        body = {"command": "uptime", field: "1' UNION SELECT password FROM users--"}
        status, problem = call(gateway, "/checks", body)
        assert status == 400, field
        assert problem is not None
        assert problem["reason"] == "openapi.invalid_request", field
    assert len(recording.requests) == 1


def test_a_declared_value_the_waf_alone_would_refuse_passes_on_the_openapi_route(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """``whoami`` is a command name the detector takes for reconnaissance: without the
    document it is refused; as one of the enum's own values (body or query) it passes."""
    body = {"command": "whoami", "host": HOST}
    status, problem = call(gateway, "/unchecked", body)
    assert status == 403
    assert problem is not None
    assert problem["reason"] == "waf.cmdi"
    assert call(gateway, "/checks", body) == (200, None)
    assert call(gateway, "/checks?probe=whoami", {"command": "uptime"}) == (200, None)
    # the same word in free text is still refused on the OpenAPI route
    status, problem = call(gateway, "/checks", {"command": "uptime", "note": "whoami"})
    assert status == 403
    assert problem is not None
    assert problem["reason"] == "waf.cmdi"
    assert [request.target for request in recording.requests] == [
        "/checks",
        "/checks?probe=whoami",
    ]
