"""Every lint rule: a document that breaks it is reported, the same document fixed is not.

Each case starts from the hardened example document (which lints clean), breaks one thing
for the failing fixture and applies the rule's fix for the passing one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from dijk.lint import RULES, lint_document

Doc = dict[str, Any]
HARDENED = yaml.safe_load(
    resources.files("dijk.lint").joinpath("examples/hardened.openapi.yaml").read_text("utf-8")
)


def post(d: Doc) -> Doc:
    return d["paths"]["/accounts"]["post"]


def listing(d: Doc) -> Doc:
    return d["paths"]["/accounts"]["get"]


def one(d: Doc) -> Doc:
    return d["paths"]["/accounts/{accountId}"]["get"]


def schema(d: Doc, name: str) -> Doc:
    return d["components"]["schemas"][name]


def new_account(d: Doc) -> Doc:
    return schema(d, "NewAccount")["properties"]


def flows(d: Doc) -> Doc:
    return d["components"]["securitySchemes"]["oauth"]["flows"]


def success(operation: Doc) -> Doc:
    return next(r for code, r in operation["responses"].items() if code.startswith("2"))


# Each: (rule id, break it, fix it). Both functions get a fresh copy of the hardened doc.
def _no_security_on_post(d: Doc) -> None:
    del d["security"]
    del post(d)["security"]
    for op in (listing(d), one(d)):
        op["security"] = [{"oauth": ["accounts:read"]}]


def _public_post(d: Doc) -> None:
    _no_security_on_post(d)
    post(d)["security"] = []


def _no_security_on_reads(d: Doc) -> None:
    del d["security"]


def _public_reads(d: Doc) -> None:
    d["security"] = []


def _optional(d: Doc) -> None:
    d["security"] = [{"oauth": ["accounts:read"]}, {}]


def _undeclared(d: Doc) -> None:
    post(d)["security"] = [{"jwt": []}]


def _declared(d: Doc) -> None:
    d["components"]["securitySchemes"]["jwt"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    post(d)["security"] = [{"jwt": []}]


def _api_key_in_query(d: Doc) -> None:
    d["components"]["securitySchemes"]["key"] = {"type": "apiKey", "in": "query", "name": "key"}


def _api_key_in_header(d: Doc) -> None:
    d["components"]["securitySchemes"]["key"] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }


def _token_param(d: Doc) -> None:
    listing(d)["parameters"].append(
        {"name": "access_token", "in": "query", "schema": {"type": "string", "maxLength": 64}}
    )


def _page_token_param(d: Doc) -> None:
    listing(d)["parameters"].append(
        {"name": "pageToken", "in": "query", "schema": {"type": "string", "maxLength": 64}}
    )


def _basic(d: Doc) -> None:
    d["components"]["securitySchemes"]["basic"] = {"type": "http", "scheme": "basic"}


def _bearer(d: Doc) -> None:
    d["components"]["securitySchemes"]["basic"] = {"type": "http", "scheme": "bearer"}


def _implicit(d: Doc) -> None:
    flows(d)["implicit"] = {"authorizationUrl": "https://id.example.com/a", "scopes": {}}


def _password(d: Doc) -> None:
    flows(d)["password"] = {
        "tokenUrl": "https://id.example.com/t",
        "refreshUrl": "https://id.example.com/t",
        "scopes": {},
    }


def _client_credentials(d: Doc) -> None:
    flows(d)["clientCredentials"] = {"tokenUrl": "https://id.example.com/t", "scopes": {}}


def _no_refresh(d: Doc) -> None:
    del flows(d)["authorizationCode"]["refreshUrl"]


def _public_object_by_id(d: Doc) -> None:
    del d["security"]
    del post(d)["security"]


def _public_object_by_id_on_purpose(d: Doc) -> None:
    _public_object_by_id(d)
    d["security"] = []


def _integer_id(d: Doc) -> None:
    d["paths"]["/accounts/{accountId}"]["parameters"][0]["schema"] = {
        "type": "integer",
        "minimum": 1,
        "maximum": 2**31,
    }


def _open_object(d: Doc) -> None:
    del schema(d, "NewAccount")["additionalProperties"]


def _unevaluated(d: Doc) -> None:
    del schema(d, "NewAccount")["additionalProperties"]
    schema(d, "NewAccount")["unevaluatedProperties"] = False


def _map(d: Doc) -> None:
    new_account(d)["tags"] = {"type": "object", "additionalProperties": {"type": "boolean"}}


def _bounded_map(d: Doc) -> None:
    _map(d)
    new_account(d)["tags"]["maxProperties"] = 20


def _writable_balance(d: Doc) -> None:
    new_account(d)["balance"] = {"type": "string", "maxLength": 20}
    del schema(d, "Account")["properties"]["balance"]["readOnly"]


def _read_only_balance(d: Doc) -> None:
    new_account(d)["balance"] = {"type": "string", "maxLength": 20, "readOnly": True}


def _password_out(d: Doc) -> None:
    schema(d, "Account")["properties"]["password"] = {"type": "string", "maxLength": 64}


def _password_write_only(d: Doc) -> None:
    schema(d, "Account")["properties"]["password"] = {
        "type": "string",
        "maxLength": 64,
        "writeOnly": True,
    }


def _bsn_in_query(d: Doc) -> None:
    listing(d)["parameters"].append(
        {"name": "bsn", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{9}$"}}
    )


def _reference_in_query(d: Doc) -> None:
    listing(d)["parameters"].append(
        {"name": "holder", "in": "query", "schema": {"type": "string", "format": "uuid"}}
    )


def _no_response_schema(d: Doc) -> None:
    del success(one(d))["content"]["application/json"]["schema"]


def _unbounded_string(d: Doc) -> None:
    del new_account(d)["name"]["maxLength"]


def _pattern_string(d: Doc) -> None:
    new_account(d)["name"] = {"type": "string", "pattern": "^[A-Za-z ]{1,100}$"}


def _unbounded_array(d: Doc) -> None:
    del new_account(d)["labels"]["maxItems"]


def _unbounded_number(d: Doc) -> None:
    del listing(d)["parameters"][0]["schema"]["maximum"]


def _no_429(d: Doc) -> None:
    del one(d)["responses"]["429"]


def _range_4xx(d: Doc) -> None:
    _no_429(d)
    one(d)["responses"]["4XX"] = {"$ref": "#/components/responses/TooManyRequests"}


def _no_rate_headers(d: Doc) -> None:
    success(one(d))["headers"] = {}


def _x_rate_headers(d: Doc) -> None:
    success(one(d))["headers"] = {
        "X-RateLimit-Remaining": {"schema": {"type": "integer", "minimum": 0, "maximum": 10}}
    }


def _no_retry_after(d: Doc) -> None:
    del d["components"]["responses"]["TooManyRequests"]["headers"]


def _recursive(d: Doc) -> None:
    new_account(d)["parent"] = {"$ref": "#/components/schemas/NewAccount"}


def _leaf(d: Doc) -> None:
    d["components"]["schemas"]["Parent"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": {"type": "string", "maxLength": 100}},
    }
    new_account(d)["parent"] = {"$ref": "#/components/schemas/Parent"}


def _http_server(d: Doc) -> None:
    d["servers"].append({"url": "http://api.example.com/v1"})


def _loopback_server(d: Doc) -> None:
    d["servers"].append({"url": "http://127.0.0.1:8080/v1"})


def _no_401(d: Doc) -> None:
    del one(d)["responses"]["401"]


def _no_403(d: Doc) -> None:
    del one(d)["responses"]["403"]


def _no_400(d: Doc) -> None:
    del one(d)["responses"]["400"]


def _stack_trace(d: Doc) -> None:
    schema(d, "Problem")["properties"]["stackTrace"] = {"type": "string", "maxLength": 4000}


def _problem_instance(d: Doc) -> None:
    schema(d, "Problem")["properties"]["instance"] = {"type": "string", "maxLength": 200}


def _broken_ref(d: Doc) -> None:
    one(d)["responses"]["404"] = {"$ref": "#/components/responses/Gone"}


def _deprecated(d: Doc) -> None:
    one(d)["deprecated"] = True


def _admin_with_user_scopes(d: Doc) -> None:
    d["paths"]["/admin/accounts"] = {"delete": copy.deepcopy(one(d))}
    d["paths"]["/admin/accounts"]["delete"]["security"] = [{"oauth": ["accounts:read"]}]


def _admin_with_admin_scope(d: Doc) -> None:
    _admin_with_user_scopes(d)
    d["paths"]["/admin/accounts"]["delete"]["security"] = [{"oauth": ["admin"]}]


def _callback_url(d: Doc) -> None:
    new_account(d)["callbackUrl"] = {"type": "string", "maxLength": 200}


def _callback_id(d: Doc) -> None:
    new_account(d)["callbackId"] = {"type": "string", "format": "uuid"}


def _unchanged(d: Doc) -> None:
    return None


CASES: list[tuple[str, Callable[[Doc], None], Callable[[Doc], None]]] = [
    ("write-without-security", _no_security_on_post, _public_post),
    ("read-without-security", _no_security_on_reads, _public_reads),
    ("security-optional", _optional, _unchanged),
    ("security-scheme-undefined", _undeclared, _declared),
    ("credential-in-query", _api_key_in_query, _api_key_in_header),
    ("credential-in-query", _token_param, _page_token_param),
    ("weak-http-auth", _basic, _bearer),
    ("oauth-implicit-flow", _implicit, _client_credentials),
    ("oauth-password-flow", _password, _client_credentials),
    ("oauth-no-refresh-url", _no_refresh, _unchanged),
    ("object-id-without-authorization", _public_object_by_id, _public_object_by_id_on_purpose),
    ("numeric-object-id", _integer_id, _unchanged),
    ("object-open", _open_object, _unevaluated),
    ("object-map-unbounded", _map, _bounded_map),
    ("writable-privileged-property", _writable_balance, _read_only_balance),
    ("sensitive-data-in-response", _password_out, _password_write_only),
    ("sensitive-data-in-url", _bsn_in_query, _reference_in_query),
    ("response-without-schema", _no_response_schema, _unchanged),
    ("string-unbounded", _unbounded_string, _pattern_string),
    ("array-unbounded", _unbounded_array, _unchanged),
    ("number-unbounded", _unbounded_number, _unchanged),
    ("response-429-missing", _no_429, _range_4xx),
    ("rate-limit-headers-missing", _no_rate_headers, _x_rate_headers),
    ("retry-after-missing", _no_retry_after, _unchanged),
    ("ref-cycle", _recursive, _leaf),
    ("server-not-https", _http_server, _loopback_server),
    ("response-401-missing", _no_401, _unchanged),
    ("response-403-missing", _no_403, _unchanged),
    ("response-400-missing", _no_400, _unchanged),
    ("verbose-error-schema", _stack_trace, _problem_instance),
    ("ref-unresolvable", _broken_ref, _unchanged),
    ("deprecated-operation", _deprecated, _unchanged),
    ("admin-security-not-distinct", _admin_with_user_scopes, _admin_with_admin_scope),
    ("url-parameter", _callback_url, _callback_id),
]


def lint_variant(tmp_path: Path, change: Callable[[Doc], None], name: str) -> set[str]:
    document = copy.deepcopy(HARDENED)
    change(document)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = lint_document(str(path))
    assert result.error is None, result.error
    return {finding.rule_id for finding in result.findings}


def test_every_rule_has_a_failing_and_a_passing_case() -> None:
    assert {rule for rule, _bad, _good in CASES} == {rule.id for rule in RULES}


def test_hardened_example_document_lints_clean(tmp_path: Path) -> None:
    assert lint_variant(tmp_path, _unchanged, "hardened") == set()


@pytest.mark.parametrize(
    ("rule", "bad", "good"), CASES, ids=[f"{rule}-{bad.__name__[1:]}" for rule, bad, _ in CASES]
)
def test_rule_reports_the_problem_and_not_its_fix(
    tmp_path: Path,
    rule: str,
    bad: Callable[[Doc], None],
    good: Callable[[Doc], None],
) -> None:
    assert rule in lint_variant(tmp_path, bad, "bad")
    assert rule not in lint_variant(tmp_path, good, "good")
