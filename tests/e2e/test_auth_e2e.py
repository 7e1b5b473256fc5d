"""Authentication and authorization through a real ``dijk serve -c`` process.

The acceptance case: a gateway with ``auth.jwt.jwks_file`` and a route needing
``accounts:read`` answers 200 to a valid RS256 token; 401 to expired, wrong-audience,
forged, ``alg: none``, HS/RS-confused and over-long-lived tokens; 403 to a valid token
without the scope. Plus API keys with revocation through the admin API, per-method scopes,
network policy, and the promise that no credential reaches any log line or file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream
from tests.unit.test_jwt_advisories import AUDIENCE, ISSUER, Issuer, b64, hand_made

ADMIN_TOKEN = "admin-" + "a1b2c3d4e5f6a7b8c9d0"
READ_KEY = "dk_read_" + "5f0c2a9e7b3d41c8a6e2"
WRITE_KEY = "dk_write_" + "9d8c7b6a5f4e3d2c1b0a"


def call(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def auth_config(upstream_port: int, jwks_file: Path, **extra: Any) -> dict[str, Any]:
    config = base_config(
        upstream_port,
        consumers=[
            {"name": "reader", "api_keys": [{"env": "E2E_READ_KEY"}], "scopes": ["accounts:read"]},
            {
                "name": "writer",
                "api_keys": [{"sha256": hashlib.sha256(WRITE_KEY.encode()).hexdigest()}],
                "scopes": ["accounts:read", "accounts:write"],
                "groups": ["finance"],
            },
        ],
        auth={
            "api_key": {"header": "X-API-Key"},
            "jwt": {
                "jwks_file": str(jwks_file),
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256", "ES256"],
                "max_lifetime_s": 3600,
                "leeway_s": 5,
            },
        },
        routes=[
            {
                "name": "accounts",
                "match": {"path_prefix": "/api/v1/accounts", "methods": ["GET", "POST"]},
                "upstream": "echo",
                "auth": ["jwt", "api_key"],
                "scopes_by_method": {"GET": ["accounts:read"], "POST": ["accounts:write"]},
            },
            {
                "name": "reports",
                "match": {"path_prefix": "/api/v1/reports"},
                "upstream": "echo",
                "auth": ["api_key"],
                "groups": ["finance"],
            },
            {
                "name": "internal",
                "match": {"path_prefix": "/internal"},
                "upstream": "echo",
                "network": "internal",
            },
            {"name": "public", "match": {"path_prefix": "/"}, "upstream": "echo"},
        ],
        network={"internal_networks": ["10.0.0.0/8"]},
        logging={"level": "debug", "access_log": True},
        audit={"url": "sqlite:///./audit.db"},
    )
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream, issuer: Issuer
) -> Any:
    directory = tmp_path_factory.mktemp("auth-e2e")
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks()))
    config = auth_config(upstream.port, jwks_file)
    process = GatewayProcess(
        config, directory, {"E2E_READ_KEY": READ_KEY, "DIJK_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    process.start()
    yield process
    process.stop()


URL = "/api/v1/accounts"


def problem(body: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(body)
    return document


def test_valid_rs256_token_is_forwarded(gateway: GatewayProcess, issuer: Issuer) -> None:
    status, _, body = call(gateway.url + URL, headers=bearer(issuer.token("RS256")))
    assert status == 200, body


def test_valid_es256_token_is_forwarded(gateway: GatewayProcess, issuer: Issuer) -> None:
    status, _, _ = call(gateway.url + URL, headers=bearer(issuer.token("ES256")))
    assert status == 200


def _expect_401(gateway: GatewayProcess, token: str, reason: str) -> dict[str, Any]:
    status, headers, body = call(gateway.url + URL, headers=bearer(token))
    assert status == 401, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in headers["www-authenticate"]
    document = problem(body)
    assert document["reason"] == reason
    assert token not in body.decode()
    return document


def test_expired_token_is_refused(gateway: GatewayProcess, issuer: Issuer) -> None:
    now = int(time.time())
    _expect_401(gateway, issuer.token(iat=now - 1200, exp=now - 600), "auth.expired_token")


def test_wrong_audience_is_refused(gateway: GatewayProcess, issuer: Issuer) -> None:
    _expect_401(gateway, issuer.token(aud="someone-else"), "auth.invalid_token")


def test_forged_token_is_refused(gateway: GatewayProcess) -> None:
    _expect_401(gateway, Issuer().token(), "auth.invalid_signature")


def test_alg_none_is_refused(gateway: GatewayProcess, issuer: Issuer) -> None:
    claims = issuer.claims()
    _expect_401(gateway, hand_made({"alg": "none", "typ": "JWT"}, claims), "auth.invalid_token")
    signed = hand_made({"alg": "none", "kid": issuer.rsa_kid}, claims, b"x")
    _expect_401(gateway, signed, "auth.invalid_token")


def test_hs256_rs256_confusion_is_refused(gateway: GatewayProcess, issuer: Issuer) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.rsa_kid}
    signing_input = (
        b64(json.dumps(header).encode()) + "." + b64(json.dumps(issuer.claims()).encode())
    )
    mac = hmac.new(issuer.rsa_public_pem(), signing_input.encode(), hashlib.sha256).digest()
    _expect_401(gateway, signing_input + "." + b64(mac), "auth.invalid_token")


def test_over_long_lifetime_is_refused(gateway: GatewayProcess, issuer: Issuer) -> None:
    now = int(time.time())
    _expect_401(gateway, issuer.token(iat=now, exp=now + 7200), "auth.invalid_token")


def test_valid_token_without_the_scope_gets_403(gateway: GatewayProcess, issuer: Issuer) -> None:
    status, headers, body = call(gateway.url + URL, headers=bearer(issuer.token(scope="profile")))
    assert status == 403
    assert problem(body)["reason"] == "authz.insufficient_scope"
    assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_scopes_by_method_need_write_for_post(gateway: GatewayProcess, issuer: Issuer) -> None:
    body = b'{"name": "x"}'
    json_type = {"Content-Type": "application/json"}
    status, _, _ = call(gateway.url + URL, "POST", {**json_type, **bearer(issuer.token())}, body)
    assert status == 403
    writer = issuer.token(scope="accounts:read accounts:write")
    status, _, _ = call(gateway.url + URL, "POST", {**json_type, **bearer(writer)}, body)
    assert status == 200
    status, _, _ = call(gateway.url + URL, "POST", {**json_type, "X-API-Key": READ_KEY}, body)
    assert status == 403
    status, _, _ = call(gateway.url + URL, "POST", {**json_type, "X-API-Key": WRITE_KEY}, body)
    assert status == 200


def test_scp_claim_list_grants_scopes(gateway: GatewayProcess, issuer: Issuer) -> None:
    token = issuer.token(scope=None, scp=["accounts:read"])
    assert call(gateway.url + URL, headers=bearer(token))[0] == 200


def test_missing_credentials_get_one_challenge_per_method(gateway: GatewayProcess) -> None:
    status, _headers, body = call(gateway.url + URL)
    assert status == 401
    assert problem(body)["reason"] == "auth.missing_credentials"
    # urllib folds repeated headers; the raw response shows both challenges
    from tests.support.gateway import parse_response, raw_request

    raw = raw_request(
        gateway.port, b"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    challenges = [
        line.split(b":", 1)[1].strip()
        for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if line.lower().startswith(b"www-authenticate:")
    ]
    assert challenges == [b'ApiKey realm="dijk", header="X-API-Key"', b'Bearer realm="dijk"']
    assert parse_response(raw)[0] == 401


def test_api_key_and_wrong_api_key(gateway: GatewayProcess) -> None:
    assert call(gateway.url + URL, headers={"X-API-Key": READ_KEY})[0] == 200
    status, headers, body = call(gateway.url + URL, headers={"X-API-Key": READ_KEY + "x"})
    assert status == 401
    assert problem(body)["reason"] == "auth.invalid_key"
    assert headers["www-authenticate"].startswith("ApiKey")


def test_a_bad_credential_is_not_rescued_by_a_good_one(
    gateway: GatewayProcess, issuer: Issuer
) -> None:
    """Any-of means any *valid* credential; a presented bad one is refused outright."""
    headers = {"X-API-Key": "not-a-key", **bearer(issuer.token())}
    assert call(gateway.url + URL, headers=headers)[0] == 401


def test_consumer_groups(gateway: GatewayProcess) -> None:
    assert call(gateway.url + "/api/v1/reports", headers={"X-API-Key": WRITE_KEY})[0] == 200
    status, _, body = call(gateway.url + "/api/v1/reports", headers={"X-API-Key": READ_KEY})
    assert status == 403
    assert problem(body)["reason"] == "authz.group_not_allowed"


def test_internal_route_is_refused_from_outside(gateway: GatewayProcess) -> None:
    status, _, body = call(gateway.url + "/internal/metrics")
    assert status == 403
    assert problem(body)["reason"] == "net.denied"
    assert call(gateway.url + "/public")[0] == 200


def _admin(gateway: GatewayProcess, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
    status, _, body = call(
        f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/{path}",
        "POST",
        {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        json.dumps(payload).encode(),
    )
    return status, json.loads(body)


def test_api_key_revocation_through_the_admin_api(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, tmp_path: Path
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(Issuer().jwks()))
    gateway = start_gateway(
        auth_config(upstream.port, jwks_file),
        env={"E2E_READ_KEY": READ_KEY, "DIJK_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    assert call(gateway.url + URL, headers={"X-API-Key": READ_KEY})[0] == 200
    digest = hashlib.sha256(READ_KEY.encode()).hexdigest()
    status, answer = _admin(gateway, "keys/revoke", {"sha256": digest})
    assert status == 200, answer
    assert answer["credential_id"] == "key:" + digest[:16]
    status, _, body = call(gateway.url + URL, headers={"X-API-Key": READ_KEY})
    assert status == 401
    assert problem(body)["reason"] == "auth.key_revoked"
    assert call(gateway.url + URL, headers={"X-API-Key": WRITE_KEY})[0] == 200
    assert _admin(gateway, "keys/revoke", {"sha256": "xyz"})[0] == 400
    # a reload keeps the revocation (memory:// is shared within the process)
    reload = call(
        f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/reload",
        "POST",
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert reload[0] == 200, reload
    assert call(gateway.url + URL, headers={"X-API-Key": READ_KEY})[0] == 401


def test_jti_revocation_through_the_admin_api(gateway: GatewayProcess, issuer: Issuer) -> None:
    token = issuer.token(jti="e2e-revoke-me")
    assert call(gateway.url + URL, headers=bearer(token))[0] == 200
    status, answer = _admin(gateway, "tokens/revoke", {"jti": "e2e-revoke-me"})
    assert status == 200, answer
    _expect_401(gateway, token, "auth.token_revoked")
    assert call(gateway.url + URL, headers=bearer(issuer.token()))[0] == 200


def test_revocation_needs_the_admin_token(gateway: GatewayProcess) -> None:
    status, _, _ = call(
        f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/keys/revoke",
        "POST",
        {"Content-Type": "application/json"},
        b'{"sha256": "' + b"0" * 64 + b'"}',
    )
    assert status == 401


def test_no_credential_appears_in_any_log_or_file(
    gateway: GatewayProcess, issuer: Issuer, upstream: RecordingUpstream
) -> None:
    """Send every kind of credential, good and bad, then search everything the gateway wrote."""
    valid = issuer.token(jti="log-check")
    expired = issuer.token(iat=int(time.time()) - 1200, exp=int(time.time()) - 600)
    forged = Issuer().token()
    wrong_key = "dk_wrong_" + "0123456789abcdef0123"
    secrets = [READ_KEY, WRITE_KEY, wrong_key, valid, expired, forged, ADMIN_TOKEN]
    for headers in (
        {"X-API-Key": READ_KEY},
        {"X-API-Key": WRITE_KEY},
        {"X-API-Key": wrong_key},
        bearer(valid),
        bearer(expired),
        bearer(forged),
        bearer(valid + "tampered"),
        {"Authorization": f"Basic {base64.b64encode(b'user:' + WRITE_KEY.encode()).decode()}"},
    ):
        call(gateway.url + URL, headers=headers)
        call(
            gateway.url + URL + "?x=1",
            "POST",
            {**headers, "Content-Type": "application/json"},
            b"{}",
        )
    _admin(gateway, "tokens/revoke", {"jti": "log-check"})
    call(gateway.url + URL, headers=bearer(valid))
    time.sleep(0.5)  # let the audit writer flush
    needles = set()
    for secret in secrets:
        needles.add(secret.encode())
        if secret.count(".") == 2:  # a JWT: no segment may leak either, not even the signature
            needles.add(secret.rsplit(".", 1)[1].encode())
    written = [path for path in gateway.directory.rglob("*") if path.is_file()]
    assert gateway.log_path in written
    assert gateway.log_path.stat().st_size > 0
    for path in written:
        if path.name in ("dijk.yaml", "jwks.json"):
            continue  # our own inputs, not written by the gateway
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"a credential leaked into {path.name}"
