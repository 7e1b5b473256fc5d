"""The inventory against a declared document: shadow, zombie and drift findings."""

from __future__ import annotations

import json
from typing import Any

import orjson

from dijk.discovery.diff import diff_inventory
from dijk.discovery.inventory import Exchange, Learner
from dijk.reporting import render
from tests.support.sarif import assert_valid_sarif

DAY_US = 86_400 * 1_000_000
NOW = 1_796_000_000_000_000

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "servers": [{"url": "https://bank.test/api"}],
    "paths": {
        "/v1/accounts/{id}": {
            "get": {
                "parameters": [{"name": "id", "in": "path", "required": True}],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Account"}}
                        },
                    }
                },
            }
        },
        "/v1/accounts/me": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/v1/legacy": {"get": {"deprecated": True, "responses": {"200": {"description": "ok"}}}},
        "/v1/reports": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "Account": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "owner": {"$ref": "#/components/schemas/Owner"},
                },
            },
            "Owner": {"type": "object", "properties": {"name": {"type": "string"}}},
        }
    },
}


def _learner(*exchanges: Exchange) -> list[dict[str, Any]]:
    learner = Learner()
    for exchange in exchanges:
        learner.observe(exchange)
    return learner.snapshot()


def _get(path: str, body: object = None, *, status: int = 200, when: int = NOW) -> Exchange:
    return Exchange(
        method="GET",
        path=path,
        time_us=when,
        status=status,
        response_type="application/json" if body is not None else "",
        response_body=orjson.dumps(body) if body is not None else None,
    )


def _rules(endpoints: list[dict[str, Any]], **options: Any) -> list[tuple[str, str]]:
    report = diff_inventory(SPEC, endpoints, spec_file="bank.yaml", now_us=NOW, **options)
    return sorted((finding.rule_id, finding.message) for finding in report.findings)


def test_undeclared_endpoint_is_shadow_declared_ones_are_not() -> None:
    endpoints = _learner(
        _get("/api/v0/accounts/7", {"id": 7}),
        _get("/api/v1/accounts/8", {"id": 8}),
        _get("/api/v1/accounts/me"),
    )
    findings = _rules(endpoints)
    shadows = [message for rule, message in findings if rule == "discovery.shadow_endpoint"]
    assert len(shadows) == 1
    assert shadows[0].startswith("GET /api/v0/accounts/{id} was called once")


def test_declared_path_with_another_method_is_shadow() -> None:
    endpoints = _learner(Exchange("DELETE", "/api/v1/accounts/9", NOW, 204))
    (finding,) = [m for r, m in _rules(endpoints) if r == "discovery.shadow_endpoint"]
    assert "the path is declared, not this method" in finding


def test_deprecated_but_called_is_zombie() -> None:
    endpoints = _learner(_get("/api/v1/legacy"))
    assert any(rule == "discovery.zombie_deprecated" for rule, _ in _rules(endpoints))


def test_unused_declared_operation_is_zombie_only_when_the_inventory_reaches_back() -> None:
    recent = _learner(_get("/api/v1/accounts/me"))
    assert not any(rule == "discovery.zombie_unused" for rule, _ in _rules(recent))
    old = _learner(_get("/api/v1/accounts/me", when=NOW - 40 * DAY_US), _get("/api/v1/accounts/me"))
    unused = [m for r, m in _rules(old, unused_days=30) if r == "discovery.zombie_unused"]
    assert any("GET /v1/reports" in message for message in unused)
    assert not any("/v1/accounts/me" in message for message in unused)


def test_drift_in_parameters_fields_statuses_and_content_types() -> None:
    endpoints = _learner(
        Exchange(
            "GET",
            "/api/v1/accounts/8",
            NOW,
            200,
            query="expand=owner",
            response_type="application/json",
            response_body=b'{"id": 8, "bsn": "x", "owner": {"name": "a", "iban": "y"}}',
        ),
        Exchange("GET", "/api/v1/accounts/9", NOW, 500, response_type="text/html"),
    )
    findings = _rules(endpoints)
    rules = [rule for rule, _ in findings]
    messages = " | ".join(message for _, message in findings)
    assert "discovery.undeclared_parameter" in rules
    assert "'expand'" in messages
    assert "response property $.bsn" in messages
    assert "response property $.owner.iban" in messages
    assert "answered 500" in messages
    assert "discovery.shadow_endpoint" not in rules


def test_requests_that_matched_no_route_are_not_shadow_apis() -> None:
    endpoints = _learner(Exchange("GET", "/wp-admin/setup.php", NOW, 0, matched=False))
    assert _rules(endpoints) == []


def test_sarif_output_is_valid() -> None:
    endpoints = _learner(_get("/api/v0/accounts/7", {"id": 7}))
    report = diff_inventory(SPEC, endpoints, spec_file="bank.yaml", now_us=NOW)
    document = json.loads(render(report, "sarif"))
    assert_valid_sarif(document)
    (result,) = document["runs"][0]["results"]
    assert result["ruleId"] == "discovery.shadow_endpoint"
