"""The rules ``dijk scan`` reports under: stable ids, class, OWASP API Top 10 2023, fix.

Rule ids are ``scan.<area>.<what>``; the *class* groups them the way the OWASP list and
the unsafe demo's truth file do (``bola``, ``broken_authentication``...). Injection and
response conformance have no category of their own in the 2023 list: injection is filed
under API8 (missing input handling is a misconfiguration there), and responses that break
their document under API9 (the documentation no longer describes the API).
"""

from __future__ import annotations

from typing import Final

from dijk.reporting import Rule, Severity

__all__ = ["CLASSES", "RULES", "rule", "rule_class"]

H, M, L = Severity.high, Severity.medium, Severity.low

_TABLE: Final = [
    # id, class, name, severity, owasp, description, fix
    (
        "scan.bola.read",
        "bola",
        "object read by another user",
        H,
        "API1:2023",
        "Identity B read an object that only identity A's responses contained (ids harvested "
        "from A's listing).",
        "Check on every object access that the caller owns (or may see) the object, not only "
        "that it is signed in.",
    ),
    (
        "scan.bola.write",
        "bola",
        "object changed by another user",
        H,
        "API1:2023",
        "Identity B changed an object that only identity A's responses contained.",
        "Check ownership on every write, on the server, for every object id in the path or body.",
    ),
    (
        "scan.auth.no_credential",
        "broken_authentication",
        "no credential accepted",
        H,
        "API2:2023",
        "An operation the document protects answered successfully without any credential.",
        "Require authentication on the operation (or declare it public with `security: []` if "
        "it is).",
    ),
    (
        "scan.auth.invalid_credential",
        "broken_authentication",
        "invalid credential accepted",
        H,
        "API2:2023",
        "An operation answered successfully to a made-up credential.",
        "Validate the credential on every request; refuse unknown keys and malformed tokens "
        "with 401.",
    ),
    (
        "scan.auth.alg_none",
        "broken_authentication",
        "unsigned JWT accepted",
        H,
        "API2:2023",
        "A JWT with `alg: none` and no signature was accepted.",
        "Verify tokens with an explicit allow-list of algorithms bound to the key; never "
        "accept `none`.",
    ),
    (
        "scan.auth.signature_not_verified",
        "broken_authentication",
        "JWT signature not verified",
        H,
        "API2:2023",
        "A JWT carrying the identity's claims but signed with a random key was accepted.",
        "Verify the signature with the issuer's key before reading any claim.",
    ),
    (
        "scan.auth.expired_token",
        "broken_authentication",
        "expired JWT accepted",
        H,
        "API2:2023",
        "A correctly signed JWT whose `exp` lies an hour in the past was accepted.",
        "Check `exp` (and `nbf`) on every token, with a small leeway only.",
    ),
    (
        "scan.auth.weak_jwt_secret",
        "broken_authentication",
        "guessable JWT signing key",
        H,
        "API2:2023",
        "The identity's HMAC-signed JWT was signed with a word from a short list of well-known "
        "keys.",
        "Sign with a random key of at least 32 bytes (or an asymmetric key) kept out of the "
        "code; rotate it.",
    ),
    (
        "scan.property.mass_assignment",
        "property_authorization",
        "mass assignment",
        H,
        "API3:2023",
        "A write accepted and stored read-only or undeclared properties sent by the client.",
        "Bind request bodies to an explicit allow-list of writable fields; refuse (400) or "
        "ignore the rest.",
    ),
    (
        "scan.property.excessive_data",
        "property_authorization",
        "undeclared data in responses",
        M,
        "API3:2023",
        "A response carried properties its document does not declare (high when they hold "
        "personal data or secrets).",
        "Serialise responses from an explicit list of fields; never return whole records.",
    ),
    (
        "scan.resource.no_rate_limit",
        "resource_consumption",
        "no rate limit",
        M,
        "API4:2023",
        "A bounded burst of requests was answered without a single 429 (high for a login "
        "operation).",
        "Rate-limit per client and per credential, with 429 and Retry-After; limit login "
        "attempts per account and IP.",
    ),
    (
        "scan.resource.page_size",
        "resource_consumption",
        "page size not limited",
        M,
        "API4:2023",
        "A page-size parameter far above its documented maximum was served in full.",
        "Enforce the documented maximum (or clamp to it) on the server.",
    ),
    (
        "scan.resource.body_size",
        "resource_consumption",
        "request size not limited",
        M,
        "API4:2023",
        "A 2 MiB request body (a string over its documented maxLength) was accepted.",
        "Limit request body sizes and enforce maxLength; answer 413 or 400.",
    ),
    (
        "scan.bfla",
        "bfla",
        "admin function open to users",
        H,
        "API5:2023",
        "A non-admin identity called an operation meant for administrators and was not refused.",
        "Authorise every operation by role or scope on the server; deny by default.",
    ),
    (
        "scan.ssrf",
        "ssrf",
        "server-side request forgery",
        H,
        "API7:2023",
        "A URL parameter made the target fetch the scanner's canary on 127.0.0.1.",
        "Fetch only allow-listed hosts; refuse loopback, private and link-local addresses "
        "after resolving.",
    ),
    (
        "scan.misconfig.cors",
        "misconfiguration",
        "CORS allows any origin with credentials",
        H,
        "API8:2023",
        "A foreign Origin was allowed (reflected or `*`) together with "
        "Access-Control-Allow-Credentials: true.",
        "Allow-list the origins that may call the API with credentials; never reflect the "
        "Origin header.",
    ),
    (
        "scan.misconfig.error_disclosure",
        "misconfiguration",
        "stack trace or internals in an error",
        M,
        "API8:2023",
        "An error response showed a stack trace, a database error or other internals.",
        "Answer errors with a generic problem document; log details on the server only.",
    ),
    (
        "scan.misconfig.version_disclosure",
        "misconfiguration",
        "software versions disclosed",
        L,
        "API8:2023",
        "Response headers name the server software with its exact version.",
        "Remove or blank Server/X-Powered-By versions.",
    ),
    (
        "scan.misconfig.security_headers",
        "misconfiguration",
        "security headers missing",
        L,
        "API8:2023",
        "API responses lack headers that stop browsers from sniffing or caching them.",
        "Send `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` on API responses "
        "(HSTS over HTTPS).",
    ),
    (
        "scan.misconfig.trace",
        "misconfiguration",
        "TRACE enabled",
        M,
        "API8:2023",
        "The target answered TRACE, echoing the request (credentials and cookies included).",
        "Disable TRACE (405) on the server and any proxy in front of it.",
    ),
    (
        "scan.misconfig.plain_http",
        "misconfiguration",
        "API served over plain HTTP",
        L,
        "API8:2023",
        "The target URL uses http://: credentials and personal data cross the network unencrypted.",
        "Serve the API over HTTPS only (TLS 1.2+) and redirect or refuse plain HTTP.",
    ),
    (
        "scan.inventory.old_version",
        "inventory",
        "old API version still answering",
        M,
        "API9:2023",
        "A version of a documented path other than the documented one (e.g. /v0/ for /v1/) "
        "answered.",
        "Retire old versions (remove their routes) or document and protect them like the "
        "current one.",
    ),
    (
        "scan.inventory.undocumented_path",
        "inventory",
        "undocumented endpoint answering",
        M,
        "API9:2023",
        "A common path that the document does not declare answered successfully.",
        "Remove debug and internal endpoints from production, or document and protect them.",
    ),
    (
        "scan.injection.sql",
        "injection",
        "SQL injection",
        H,
        "API8:2023",
        "A parameter changed the database query: a database error, a true/false difference or "
        "a delay followed.",
        "Use parameterised queries; never build SQL from input.",
    ),
    (
        "scan.injection.nosql",
        "injection",
        "NoSQL operator injection",
        H,
        "API8:2023",
        "A parameter given a query operator (`$ne`, `$regex`) changed the result as a query would.",
        "Accept only scalar values where scalars are expected; never pass input objects into a "
        "query.",
    ),
    (
        "scan.injection.command",
        "injection",
        "OS command injection",
        H,
        "API8:2023",
        "A parameter ran a shell command: its output appeared in the response, or the response "
        "was delayed.",
        "Never build command lines from input; call programs with an argument list and no shell.",
    ),
    (
        "scan.injection.template",
        "injection",
        "server-side template injection",
        H,
        "API8:2023",
        "A template expression in a parameter was evaluated by the server.",
        "Never build templates from input; pass input as data to a fixed template.",
    ),
    (
        "scan.schema.response",
        "schema_conformance",
        "response breaks the document",
        L,
        "API9:2023",
        "A response to an ordinary request did not match the status codes or schema the "
        "document declares.",
        "Fix the implementation or the document so that they agree; clients are generated from "
        "the document.",
    ),
]

RULES: Final = [
    Rule(id, name, sev, owasp, desc, fix) for id, _c, name, sev, owasp, desc, fix in _TABLE
]
_BY_ID: Final = {rule.id: rule for rule in RULES}
_CLASS: Final = {row[0]: row[1] for row in _TABLE}
CLASSES: Final = tuple(dict.fromkeys(row[1] for row in _TABLE))


def rule(rule_id: str) -> Rule:
    return _BY_ID[rule_id]


def rule_class(rule_id: str) -> str:
    return _CLASS[rule_id]
