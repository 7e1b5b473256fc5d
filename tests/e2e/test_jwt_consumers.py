"""JWT callers linked to configured consumers, through a real ``dijk serve -c`` process.

``consumers[].jwt_subjects`` makes a token whose ``sub`` is listed *be* that consumer: its
own rate limit applies (2 per minute here; the third call is a 429 naming the consumer's
policy), and the audit log names it. Tokens whose ``sub`` is not listed keep working as
``jwt:<sub>``, outside the consumer's limits — including a token whose ``sub`` is spelled
like a configured consumer's name — and a token from another issuer claiming the listed
``sub`` is refused without touching the consumer's budget.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ratelimit_gateway import call
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream
from tests.unit.test_jwt_advisories import AUDIENCE, ISSUER, Issuer

ADMIN_KEY = "dk_admin_app_" + "6b1f0e9d8c7a5e4f3a2b"
OTHER_ISSUER = "https://idp.elsewhere.test"
URL = "/api/v1/accounts"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def linked_config(upstream: RecordingUpstream, jwks_file: Path) -> dict[str, Any]:
    return base_config(
        upstream.port,
        # The test client stands for a proxy in front, whose X-Request-Id the gateway keeps.
        trusted_proxies=["127.0.0.1/32"],
        consumers=[
            {
                "name": "partner",
                "jwt_subjects": ["svc-partner"],
                "scopes": ["accounts:read"],
                "rate_limit": [{"name": "partner-window", "limit": 2, "per_s": 60}],
            },
            {
                "name": "admin-app",
                "api_keys": [{"sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}],
                "scopes": ["accounts:read"],
                "rate_limit": [{"name": "admin-window", "limit": 1, "per_s": 60}],
            },
        ],
        auth={
            "api_key": {"header": "X-API-Key"},
            "jwt": {
                "jwks_file": str(jwks_file),
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256"],
            },
        },
        routes=[
            {
                "name": "accounts",
                "match": {"path_prefix": URL},
                "upstream": "echo",
                "auth": ["jwt", "api_key"],
                "scopes": ["accounts:read"],
            }
        ],
        ratelimit={"key_prefix": f"t{uuid.uuid4().hex[:12]}:"},
        audit={"url": "sqlite:///./audit.db"},
    )


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess],
    recording: RecordingUpstream,
    issuer: Issuer,
    tmp_path: Path,
) -> GatewayProcess:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks()))
    return start_gateway(linked_config(recording, jwks_file))


def with_token(gateway: GatewayProcess, token: str, request_id: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return call(gateway.port, URL, headers=headers)


def audited_consumers(gateway: GatewayProcess, marker: str, count: int) -> dict[str, str]:
    """request id → consumer, for the ``count`` audit records whose id starts with marker."""
    database = gateway.directory / "audit.db"
    found: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        if not database.exists():
            continue
        with closing(sqlite3.connect(database)) as connection:
            try:
                rows = connection.execute("SELECT request_id, consumer FROM dijk_audit").fetchall()
            except sqlite3.OperationalError:
                continue
        found = {str(rid): str(consumer) for rid, consumer in rows if str(rid).startswith(marker)}
    return found


def test_a_mapped_subject_gets_the_consumers_rate_limit(
    gateway: GatewayProcess, issuer: Issuer
) -> None:
    marker = "linked-" + uuid.uuid4().hex[:8]
    answers = [
        with_token(gateway, issuer.token(sub="svc-partner"), f"{marker}-{n}") for n in range(3)
    ]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    for _, headers, _ in answers:
        assert '"partner-window";q=2;w=60' in headers["ratelimit-policy"]
    _, headers, body = answers[2]
    problem = json.loads(body)
    assert problem["reason"] == "ratelimit.exceeded"
    assert "2 requests per 60 s per consumer" in problem["detail"]
    assert headers["ratelimit"].startswith('"partner-window";r=0;t=')
    assert set(audited_consumers(gateway, marker, 3).values()) == {"partner"}


def test_an_unmapped_subject_is_not_limited_by_it(gateway: GatewayProcess, issuer: Issuer) -> None:
    for _ in range(3):
        assert with_token(gateway, issuer.token(sub="svc-partner"))[0] in (200, 429)
    assert with_token(gateway, issuer.token(sub="svc-partner"))[0] == 429
    marker = "unlinked-" + uuid.uuid4().hex[:8]
    for n in range(4):
        status, headers, _ = with_token(gateway, issuer.token(sub="someone"), f"{marker}-{n}")
        assert status == 200
        assert "partner-window" not in headers.get("ratelimit-policy", "")
    assert set(audited_consumers(gateway, marker, 4).values()) == {"jwt:someone"}
    # Token subjects are not metric labels: many subjects cannot blow up /metrics.
    for n in range(5):
        assert with_token(gateway, issuer.token(sub=f"cardinality-{n}"))[0] == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        metrics = response.read().decode()
    assert "cardinality-" not in metrics
    assert "someone" not in metrics
    assert "svc-partner" not in metrics


def test_a_token_from_another_issuer_with_the_same_sub_is_not_mapped(
    gateway: GatewayProcess, issuer: Issuer
) -> None:
    """Same key, same sub, another ``iss``: refused, and the consumer's budget is untouched
    (a link is issuer + subject; this gateway trusts one issuer)."""
    for _ in range(3):
        status, _, body = with_token(gateway, issuer.token(iss=OTHER_ISSUER, sub="svc-partner"))
        assert status == 401
        assert json.loads(body)["reason"] == "auth.invalid_token"
    statuses = [with_token(gateway, issuer.token(sub="svc-partner"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_sub_equal_to_a_consumer_name_does_not_become_that_consumer(
    gateway: GatewayProcess, issuer: Issuer
) -> None:
    """admin-app allows 1 call a minute and lists no subject: a token with sub="admin-app"
    is not limited by it, does not spend its budget, and is logged as jwt:admin-app."""
    marker = "spoof-" + uuid.uuid4().hex[:8]
    for n in range(3):
        status, headers, _ = with_token(gateway, issuer.token(sub="admin-app"), f"{marker}-{n}")
        assert status == 200
        assert "admin-window" not in headers.get("ratelimit-policy", "")
    assert set(audited_consumers(gateway, marker, 3).values()) == {"jwt:admin-app"}
    # The real admin-app still has its whole (one-call) budget.
    key = {"X-API-Key": ADMIN_KEY}
    first, second = call(gateway.port, URL, headers=key), call(gateway.port, URL, headers=key)
    assert (first[0], second[0]) == (200, 429)
    assert '"admin-window";q=1;w=60' in first[1]["ratelimit-policy"]
