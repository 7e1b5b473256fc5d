"""The lint rules: stable ids, default severity, OWASP API Top 10 2023 category, why, fix.

Ids never change meaning; a rule that is withdrawn keeps its id reserved. The checks that
raise them are in :mod:`dijk.lint.checks`.
"""

from __future__ import annotations

from typing import Final

from dijk.reporting import Rule, Severity

__all__ = ["RULES", "RULES_BY_ID"]

_H, _M, _L, _I = Severity.high, Severity.medium, Severity.low, Severity.info

RULES: Final = (
    # ---------------------------------------------------------------- API2 authentication
    Rule(
        "write-without-security",
        "Write operation without security",
        _H,
        "API2:2023",
        "A POST, PUT, PATCH or DELETE operation has no security requirement, neither its own "
        "nor the document's, and does not say `security: []` to mark itself public on purpose.",
        "Add a `security` requirement naming a declared scheme, or `security: []` if the "
        "operation really is public.",
    ),
    Rule(
        "read-without-security",
        "Read operation without security",
        _M,
        "API2:2023",
        "A GET, HEAD or OPTIONS operation has no security requirement and is not marked public "
        "with `security: []`: anyone can read what it returns.",
        "Add a `security` requirement, or `security: []` if the data is public.",
    ),
    Rule(
        "security-optional",
        "Security requirement allows anonymous access",
        _M,
        "API2:2023",
        "A security requirement list contains the empty requirement `{}`, which makes "
        "authentication optional for the operation.",
        "Remove `{}` from the list, or split the anonymous behaviour into its own operation.",
    ),
    Rule(
        "security-scheme-undefined",
        "Security requirement names an undeclared scheme",
        _H,
        "API2:2023",
        "A security requirement names a scheme that `components.securitySchemes` "
        "(`securityDefinitions` in 2.0) does not declare; tools and gateways cannot enforce it.",
        "Declare the scheme, or correct the name in the requirement.",
    ),
    Rule(
        "credential-in-query",
        "Credential in the URL",
        _H,
        "API2:2023",
        "An API key scheme or a parameter named like a credential (token, api_key, password, "
        "secret, session) is sent in the query string, which ends up in access logs, proxy "
        "logs, browser history and Referer headers.",
        "Send credentials in a header (`Authorization`, `X-API-Key`) or a cookie.",
    ),
    Rule(
        "weak-http-auth",
        "HTTP Basic, Digest or Negotiate authentication",
        _M,
        "API2:2023",
        "The scheme sends a reusable password (Basic), relies on MD5 (Digest) or on a "
        "deprecated mechanism (Negotiate) with every request.",
        "Use short-lived bearer tokens (OAuth 2.0 / OpenID Connect) or mutual TLS.",
    ),
    Rule(
        "oauth-implicit-flow",
        "OAuth 2.0 implicit flow",
        _H,
        "API2:2023",
        "The implicit flow returns access tokens in the redirect URL; the OAuth 2.0 Security "
        "Best Current Practice forbids it.",
        "Use the authorization code flow with PKCE.",
    ),
    Rule(
        "oauth-password-flow",
        "OAuth 2.0 resource owner password flow",
        _M,
        "API2:2023",
        "The password flow hands the user's password to the client; the OAuth 2.0 Security "
        "Best Current Practice forbids it.",
        "Use the authorization code flow with PKCE (or client credentials for machines).",
    ),
    Rule(
        "oauth-no-refresh-url",
        "OAuth 2.0 flow without refresh URL",
        _L,
        "API2:2023",
        "A flow that issues user tokens declares no `refreshUrl`; without refresh tokens, "
        "access tokens tend to be made long-lived.",
        "Issue short-lived access tokens and declare the `refreshUrl` that renews them.",
    ),
    # ---------------------------------------------------------------- API1 object level
    Rule(
        "object-id-without-authorization",
        "Object id in the path of an unprotected operation",
        _H,
        "API1:2023",
        "The operation takes an object identifier in its path but has no security "
        "requirement: nothing can tie the object to the caller, so any caller can walk ids.",
        "Require authentication and check in the handler that the caller may access the object.",
    ),
    Rule(
        "numeric-object-id",
        "Sequential numeric object id",
        _L,
        "API1:2023",
        "A path identifier is an integer: ids are guessable and enumerable, which turns any "
        "missing object-level check into a data breach.",
        "Use random identifiers (UUIDs) in URLs, and check ownership on every access.",
    ),
    # ---------------------------------------------------------------- API3 property level
    Rule(
        "object-open",
        "Request object open to extra properties",
        _M,
        "API3:2023",
        "A request object declares properties but neither `additionalProperties: false` nor "
        "`unevaluatedProperties: false`: undeclared fields (`role`, `is_admin`, `owner_id`) "
        "reach the application, the classic mass-assignment hole.",
        "Add `additionalProperties: false` (or `unevaluatedProperties: false` with `allOf`).",
    ),
    Rule(
        "object-map-unbounded",
        "Request map without maxProperties",
        _M,
        "API4:2023",
        "A request object takes arbitrary extra properties (`additionalProperties` is a schema "
        "or true) with no `maxProperties`: a client can send any number of keys.",
        "Add `maxProperties`, or close the object with `additionalProperties: false`.",
    ),
    Rule(
        "writable-privileged-property",
        "Privileged property writable by the client",
        _H,
        "API3:2023",
        "A request body and a response of the same resource share a property such as `id`, "
        "`role`, `is_admin`, `owner_id`, `balance` or `permissions` that is not `readOnly`: "
        "clients can set fields the server should own.",
        "Mark the property `readOnly: true`, or use separate request and response schemas.",
    ),
    Rule(
        "sensitive-data-in-response",
        "Sensitive data in a response",
        _M,
        "API3:2023",
        "A response schema has a property named like a secret or special personal data "
        "(password, PIN, CVV, card number, BSN/SSN) that is not `writeOnly`.",
        "Remove the property from responses, mask it, or mark it `writeOnly: true`.",
    ),
    Rule(
        "sensitive-data-in-url",
        "Sensitive data in the URL",
        _M,
        "API3:2023",
        "A path or query parameter carries personal or secret data (BSN/SSN, card number, "
        "IBAN, e-mail, date of birth, password): URLs are logged and cached everywhere.",
        "Move the value into the request body or a header; use an opaque reference in URLs.",
    ),
    Rule(
        "response-without-schema",
        "Success response without schema",
        _L,
        "API3:2023",
        "A 2xx response declares content without a schema: no one can check that it returns "
        "only the properties it should, and a gateway cannot strip the rest.",
        "Describe the response body with a schema.",
    ),
    # ---------------------------------------------------------------- API4 resources
    Rule(
        "string-unbounded",
        "Request string without a length limit",
        _M,
        "API4:2023",
        "A string the client sends has no `maxLength`, no `enum`/`const`, no anchored bounded "
        "`pattern` and no fixed-size `format` (date, uuid, ...): one field can carry megabytes.",
        "Add `maxLength` (and a `pattern` or `format` where the value has a shape).",
    ),
    Rule(
        "array-unbounded",
        "Request array without maxItems",
        _M,
        "API4:2023",
        "An array the client sends has no `maxItems`: one request can ask for unbounded work.",
        "Add `maxItems`.",
    ),
    Rule(
        "number-unbounded",
        "Request number without bounds",
        _L,
        "API4:2023",
        "An integer or number the client sends lacks `minimum` or `maximum` (page sizes, "
        "amounts, counts): extreme values reach the application.",
        "Add `minimum` and `maximum` (or `enum`).",
    ),
    Rule(
        "response-429-missing",
        "No 429 response declared",
        _L,
        "API4:2023",
        "The operation does not declare `429 Too Many Requests`: clients are not told the API "
        "is rate limited, and the limit is often missing as well.",
        "Rate-limit the operation and declare its 429 response (with `Retry-After`).",
    ),
    Rule(
        "rate-limit-headers-missing",
        "No rate-limit headers declared",
        _L,
        "API4:2023",
        "None of the operation's success responses declares rate-limit headers "
        "(`RateLimit`, `RateLimit-Policy`, `X-RateLimit-*`).",
        "Declare the rate-limit headers the API returns on success responses.",
    ),
    Rule(
        "retry-after-missing",
        "429 response without Retry-After",
        _L,
        "API4:2023",
        "A 429 response does not declare the `Retry-After` header: clients retry at once.",
        "Declare `Retry-After` on 429 responses.",
    ),
    Rule(
        "ref-cycle",
        "Recursive schema",
        _L,
        "API4:2023",
        "A schema refers back to itself through `$ref`: nesting depth is unbounded unless the "
        "server limits it, and naive validators or code generators can recurse without end.",
        "Bound the depth (a separate, non-recursive leaf schema) or make sure the parser limits "
        "nesting depth.",
    ),
    # ---------------------------------------------------------------- API5, API7
    Rule(
        "admin-security-not-distinct",
        "Admin operation accepts ordinary credentials",
        _M,
        "API5:2023",
        "An operation under an admin path accepts a security requirement (scheme and scopes) "
        "that ordinary operations accept too: any user's credential reaches the admin function "
        "unless every handler checks roles itself.",
        "Protect admin operations with their own scheme or admin-only scopes.",
    ),
    Rule(
        "url-parameter",
        "Client-supplied URL",
        _L,
        "API7:2023",
        "A parameter or request property named like a URL, callback, redirect or webhook: if "
        "the server fetches or redirects to it, it is a server-side request forgery or open "
        "redirect vector.",
        "Allow-list destinations (scheme, host, port), resolve and refuse internal addresses, "
        "or take an identifier instead of a URL.",
    ),
    # ---------------------------------------------------------------- API8 misconfiguration
    Rule(
        "server-not-https",
        "Server over plain HTTP",
        _H,
        "API8:2023",
        "A server URL (or a 2.0 `schemes` entry) uses `http://`: credentials and data cross "
        "the network in clear text. Loopback servers are not reported.",
        "Serve the API over HTTPS only and list only `https://` servers.",
    ),
    Rule(
        "response-401-missing",
        "No 401 response on a secured operation",
        _L,
        "API8:2023",
        "A secured operation does not declare `401 Unauthorized`: the behaviour without valid "
        "credentials is undocumented and untested.",
        "Declare the 401 response (with a problem+json schema).",
    ),
    Rule(
        "response-403-missing",
        "No 403 response on a scoped operation",
        _L,
        "API8:2023",
        "An operation requiring scopes or roles does not declare `403 Forbidden`.",
        "Declare the 403 response (with a problem+json schema).",
    ),
    Rule(
        "response-400-missing",
        "No 400 response on an operation with input",
        _L,
        "API8:2023",
        "The operation takes parameters or a body but declares no `400`/`422` response: "
        "invalid input handling is undocumented.",
        "Declare the 400 (or 422) response with a schema that does not echo internals.",
    ),
    Rule(
        "verbose-error-schema",
        "Error response exposes internals",
        _L,
        "API8:2023",
        "An error response schema has properties such as `stack`, `stackTrace`, `exception`, "
        "`sql` or `debug`: errors are designed to leak implementation details.",
        "Return RFC 9457 problem details (type, title, status, detail) and log the rest.",
    ),
    Rule(
        "ref-unresolvable",
        "Unresolvable $ref",
        _M,
        "API8:2023",
        "A `$ref` points at nothing (missing file, missing pointer, a loop of references): "
        "that part of the contract is not enforced by anything that reads the document.",
        "Fix the reference.",
    ),
    # ---------------------------------------------------------------- API9 inventory
    Rule(
        "deprecated-operation",
        "Deprecated operation still served",
        _I,
        "API9:2023",
        "The operation is marked deprecated but is still part of the document: old versions "
        "stay reachable and usually stay less protected.",
        "Set a sunset date, monitor its use, and remove it from the API and the document.",
    ),
)

RULES_BY_ID: Final = {rule.id: rule for rule in RULES}
