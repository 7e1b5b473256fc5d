"""The scanner's pure parts: identities and forged tokens, redaction, values, HTML, truth."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from dijk.demo.truth import PlantedFlaw, load_truth, missed_flaws
from dijk.reporting import Finding, Location, Report, Severity, render
from dijk.scan.client import Exchange, redact
from dijk.scan.exposure import error_signature
from dijk.scan.identities import (
    IdentityError,
    expired_claims,
    parse_identity,
    resigned_token,
    signed_token,
    signs,
    unsigned_token,
    weak_secret,
)
from dijk.scan.rules import CLASSES, RULES, rule_class
from dijk.scan.spec import load_api_spec
from dijk.scan.values import distinct_value, example_body, example_value

SECRET = "a-strong-random-key-of-at-least-32-bytes!!"


def _segment(part: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_identity_with_a_bearer_jwt_is_recognised_as_one() -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    identity = parse_identity(f"alice=Authorization:Bearer {token}")
    assert identity.header == "Authorization"
    assert identity.jwt is not None
    assert identity.jwt.claims == {"sub": "alice"}
    assert identity.with_token("x") == {"Authorization": "Bearer x"}
    assert token in identity.secrets()


def test_api_key_identity_has_no_jwt() -> None:
    identity = parse_identity("reader=X-API-Key:dk_read_123")
    assert identity.jwt is None
    assert identity.headers == {"X-API-Key": "dk_read_123"}


@pytest.mark.parametrize("text", ["alice", "alice=Authorization", "=X:1", "a b=X:1", "a=X Y:1"])
def test_malformed_identity_is_refused_without_echoing_the_value(text: str) -> None:
    with pytest.raises(IdentityError) as raised:
        parse_identity(text)
    assert ":1" not in str(raised.value).replace("NAME=HEADER:VALUE", "")


def test_unsigned_token_keeps_the_claims_and_says_alg_none() -> None:
    token = jwt.encode({"sub": "alice", "role": "customer"}, SECRET, algorithm="HS256")
    parts = parse_identity(f"a=Authorization:Bearer {token}").jwt
    assert parts is not None
    forged = unsigned_token(parts)
    header, claims, signature = forged.split(".")
    assert _segment(header)["alg"] == "none"
    assert _segment(claims) == {"sub": "alice", "role": "customer"}
    assert signature == ""


def test_resigned_token_fails_verification_with_the_real_key() -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    parts = parse_identity(f"a=Authorization:Bearer {token}").jwt
    assert parts is not None
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(resigned_token(parts), SECRET, algorithms=["HS256"])


def test_guessable_jwt_key_is_found_and_a_strong_one_is_not() -> None:
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        weak = jwt.encode({"sub": "a"}, "changeme", algorithm="HS256")
    strong = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    weak_parts = parse_identity(f"a=Authorization:Bearer {weak}").jwt
    strong_parts = parse_identity(f"a=Authorization:Bearer {strong}").jwt
    assert weak_parts is not None
    assert strong_parts is not None
    assert weak_secret(weak_parts) == "changeme"
    assert weak_secret(strong_parts) is None


def test_signs_tells_the_signing_key_from_another() -> None:
    token = jwt.encode({"sub": "a"}, SECRET * 2, algorithm="HS384")
    parts = parse_identity(f"a=Authorization:Bearer {token}").jwt
    assert parts is not None
    assert signs(parts, SECRET * 2)
    assert not signs(parts, SECRET)


def test_expired_token_signed_with_the_key_is_valid_but_expired() -> None:
    token = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    parts = parse_identity(f"a=Authorization:Bearer {token}").jwt
    assert parts is not None
    expired = signed_token(parts, SECRET.encode(), expired_claims(parts, now=1_000_000))
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, SECRET, algorithms=["HS256"])
    assert (
        jwt.decode(expired, SECRET, algorithms=["HS256"], options={"verify_exp": False})["sub"]
        == "a"
    )


def test_redaction_removes_credentials_tokens_and_secret_fields() -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    text = (
        f'{{"token": "{token}", "password": "hunter2", "name": "Ann"}}\n'
        "Authorization: Bearer abc.def\nCookie: session=s3cr3t\nX-Other: fine"
    )
    cleaned = redact(text, ["my-api-key"])
    assert token not in cleaned
    assert token.split(".")[1] not in cleaned
    assert "hunter2" not in cleaned
    assert "s3cr3t" not in cleaned
    assert "abc.def" not in cleaned
    assert '"name": "Ann"' in cleaned
    assert "X-Other: fine" in cleaned
    assert redact("key=my-api-key", ["my-api-key"]) == "key=[redacted]"


def test_exchange_evidence_redacts_credential_headers_but_keeps_the_scheme() -> None:
    exchange = Exchange(
        "GET",
        "http://127.0.0.1/x?api_key=k3y-value",
        {"Authorization": "Bearer eyJabc.eyJdef.sig", "X-API-Key": "k3y-value", "Accept": "*/*"},
        b"",
        200,
        {"Set-Cookie": "sid=1234", "Content-Type": "application/json"},
        b'{"ok": true}',
        0.01,
        "alice",
        "test",
        secrets=("k3y-value",),
    )
    evidence = exchange.evidence()
    assert evidence["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert evidence["request"]["headers"]["X-API-Key"] == "[redacted]"
    assert evidence["request"]["headers"]["Accept"] == "*/*"
    assert "k3y-value" not in json.dumps(evidence)
    assert evidence["response"]["headers"]["Set-Cookie"] == "[redacted]"


def test_exchange_evidence_masks_personal_data_in_answers() -> None:
    document = {"email": "jan.jansen@example.nl", "iban": "NL91ABNA0417164300", "note": "ok"}
    exchange = Exchange(
        "GET",
        "http://127.0.0.1/x",
        {},
        b"",
        200,
        {"Content-Type": "application/json"},
        json.dumps(document).encode(),
        0.01,
        "alice",
        "test",
        json=document,
    )
    body = exchange.evidence()["response"]["body"]
    assert "jan.jansen@example.nl" not in body
    assert "NL91ABNA0417164300" not in body
    assert "4300" in body
    assert '"note":"ok"' in body


def test_generated_bodies_conform_and_skip_read_only_properties() -> None:
    schema = {
        "type": "object",
        "required": ["name", "email", "id"],
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "email": {"type": "string", "format": "email"},
            "phone": {"type": "string", "pattern": "^\\+?[0-9][0-9 ()-]{5,30}$"},
        },
    }
    assert example_body(schema) == {"name": "dijkscan", "email": "dijk.scan@example.com"}
    assert example_value(schema["properties"]["phone"]) == "0612345678"


def test_distinct_value_prefers_a_privileged_enum_value_and_honours_patterns() -> None:
    role = {"type": "string", "enum": ["customer", "admin", "auditor"]}
    assert distinct_value(role, "customer", "t0k") == "admin"
    balance = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"}
    assert distinct_value(balance, "10.00", "t0k") == "987654.00"
    assert distinct_value({"type": "string"}, None, "t0k") == "dijk-t0k"


@pytest.mark.parametrize(
    "text",
    [
        'Traceback (most recent call last):\n  File "app.py", line 3',
        "sqlite3.OperationalError: unrecognized token",
        "You have an error in your SQL syntax; check the manual",
        "ERROR: unterminated quoted string at or near",
        "at com.example.Service.get(Service.java:42)",
    ],
)
def test_error_signatures_are_recognised(text: str) -> None:
    assert error_signature(text) is not None


@pytest.mark.parametrize(
    "text",
    ['{"error": "not_found"}', "Syntax is fine", '{"detail": "invalid id"}', "Stack overflow Q&A"],
)
def test_ordinary_errors_are_not_mistaken_for_disclosure(text: str) -> None:
    assert error_signature(text) is None


def test_html_report_escapes_everything_that_came_from_the_target() -> None:
    hostile = '<script>alert("x")</script>'
    finding = Finding(
        rule_id="scan.ssrf",
        title="server-side request forgery",
        severity=Severity.high,
        owasp="API7:2023",
        message=f"GET /x: {hostile}",
        fix="fix it",
        location=Location(method="GET", url=f"http://127.0.0.1/x?q={hostile}"),
        evidence={
            "class": "ssrf",
            "exchanges": [
                {
                    "request": {
                        "method": "GET",
                        "url": hostile,
                        "headers": {"X": hostile},
                        "body": hostile,
                    },
                    "response": {"status": 200, "headers": {}, "body": hostile, "elapsed_ms": 1},
                }
            ],
            "note": hostile,
        },
    )
    page = render(Report("dijk scan", "0", list(RULES), [finding], [hostile]), "html")
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "default-src 'none'" in page


def test_every_rule_has_a_class_from_the_truth_vocabulary() -> None:
    truth_classes = {flaw.flaw_class for flaw in load_truth()}
    assert set(CLASSES) == truth_classes
    for definition in RULES:
        assert rule_class(definition.id) in truth_classes


def test_truth_matching_reports_a_flaw_no_finding_covers() -> None:
    truth = [
        PlantedFlaw("A", "bola", "scan.bola.read", "GET", "/a/{id}", "x"),
        PlantedFlaw("B", "misconfiguration", "scan.misconfig.trace", "TRACE", "*", "y"),
    ]
    findings = [
        {"rule_id": "scan.misconfig.trace", "evidence": {"operation": "TRACE /status"}},
        {"rule_id": "scan.bola.write", "evidence": {"operation": "GET /a/{id}"}},
    ]
    assert [flaw.id for flaw in missed_flaws(truth, findings)] == ["A"]


def test_every_truth_entry_names_a_known_rule_and_a_documented_or_planted_path() -> None:
    spec = load_api_spec("src/dijk/demo/vulnerable_openapi.yaml")
    known = {definition.id for definition in RULES}
    templates = {op.template for op in spec.operations}
    for flaw in load_truth():
        assert flaw.rule in known, flaw.id
        if flaw.flaw_class != "inventory" and flaw.path != "*":
            assert flaw.path in templates, flaw.id


def test_scan_spec_marks_admin_operations_by_tag_path_or_scope() -> None:
    spec = load_api_spec("src/dijk/demo/vulnerable_openapi.yaml")
    admin = {op.label for op in spec.operations if op.admin}
    assert admin == {
        "GET /api/v1/admin/users",
        "DELETE /api/v1/admin/users/{id}",
        "GET /api/v1/admin/audit",
    }
    public = {op.label for op in spec.operations if op.public}
    assert public == {"GET /api/v1/status", "POST /api/v1/login", "GET /api/v1/branches"}
