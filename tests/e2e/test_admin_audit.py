"""Administrative actions in the audit log, through a real ``dijk serve`` process.

A reload, key and token revocations and admin requests refused for their token each get
one record in the request records' chain (``route`` ``admin:<action>``, who, what, when,
outcome); no secret appears in any field; ``dijk audit verify`` passes over the chain that
holds them; ``dijk audit query --consumer admin:<token variable>`` finds them; a reload
that moves the log elsewhere is on record in the old log and the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from dijk.audit.chain import verify_store
from dijk.audit.keys import AuditKeys
from dijk.audit.store import open_store
from tests.integration.test_audit_contract import postgres_url
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

SECRET = "e2e-admin-audit-secret-0123456789abcdefgh"
KEYS = AuditKeys.from_secret(SECRET.encode())
API_KEY = "dk_e2e_admin_audit_" + "q" * 24
ADMIN_TOKEN = "admin-token-" + "7f3a9c" * 4
WRONG_TOKEN = "not-the-admin-token-" + "b" * 12
JTI = "jti-e2e-admin-audit-42"
ENV = {"DIJK_AUDIT_KEY": SECRET, "E2E_ADMIN_AUDIT_KEY": API_KEY, "DIJK_ADMIN_TOKEN": ADMIN_TOKEN}
ACTOR = "admin:DIJK_ADMIN_TOKEN"
KEY_DIGEST = hashlib.sha256(API_KEY.encode()).hexdigest()
SECRETS = [ADMIN_TOKEN, WRONG_TOKEN, API_KEY, JTI, KEY_DIGEST]
"""Nothing of these may be stored: tokens, the key, the raw jti, the full key digest."""


def config(upstream_port: int, **audit: Any) -> dict[str, Any]:
    return base_config(
        upstream_port,
        # The test client stands for a proxy in front, whose X-Request-Id the gateway keeps.
        trusted_proxies=["127.0.0.1/32"],
        audit={"url": "sqlite:///./audit.db", **audit},
        consumers=[{"name": "alice", "api_keys": [{"env": "E2E_ADMIN_AUDIT_KEY"}]}],
        auth={"api_key": {"header": "X-API-Key"}},
        routes=[
            {
                "name": "accounts",
                "match": {"path_template": "/accounts/{id}"},
                "upstream": "echo",
                "auth": ["api_key"],
            },
        ],
    )


def call(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, raw = error.code, error.read()
    return status, json.loads(raw) if raw else {}


def admin(
    gateway: GatewayProcess,
    request_id: str,
    path: str,
    method: str = "POST",
    token: str | None = ADMIN_TOKEN,
    body: Any = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Request-Id": request_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    return call(f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/{path}", method, headers, body)


def rows(database: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        query = "SELECT * FROM dijk_audit ORDER BY chain, seq"
        return [dict(row) for row in connection.execute(query)]


def dijk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DIJK_AUDIT_KEY": SECRET},
        check=False,
    )


def assert_no_secret(values: Any) -> None:
    text = json.dumps(values, default=lambda value: bytes(value).hex())
    for secret in SECRETS:
        assert secret not in text, f"{secret[:8]}... was stored"


# (request id, route, method, status, decision, reason, accepted, target)
Expected = tuple[str, str, str, int, str, str | None, bool, str | None]


def test_admin_actions_and_refusals_are_on_record_in_the_verified_chain(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(config(recording.port), env=ENV)
    accounts = f"{gateway.url}/accounts/1"
    assert call(accounts, headers={"X-API-Key": API_KEY, "X-Request-Id": "before"})[0] == 200

    status, answer = admin(gateway, "adm-reload", "reload")
    assert (status, answer["generation"]) == (200, 2), answer
    status, answer = admin(gateway, "adm-revoke-key", "keys/revoke", body={"sha256": KEY_DIGEST})
    assert status == 200, answer
    status, answer = call(accounts, headers={"X-API-Key": API_KEY})
    assert (status, answer["reason"]) == (401, "auth.key_revoked")
    status, answer = admin(gateway, "adm-revoke-jti", "tokens/revoke", body={"jti": JTI})
    assert status == 200, answer
    status, answer = admin(gateway, "adm-bad-revoke", "keys/revoke", body={"sha256": "xyz"})
    assert status == 400, answer
    assert admin(gateway, "adm-wrong", "reload", token=WRONG_TOKEN)[0] == 401
    assert (
        admin(gateway, "adm-missing", "keys/revoke", token=None, body={"sha256": "0" * 64})[0]
        == 401
    )
    assert admin(gateway, "adm-status", "status", "GET")[0] == 200  # read-only: no record
    assert admin(gateway, "adm-status-wrong", "status", "GET", token=WRONG_TOKEN)[0] == 401
    gateway.write_config(text="version: 1\nroutes: [\n")
    status, answer = admin(gateway, "adm-reload-broken", "reload")
    assert (status, answer["ok"], answer["generation"]) == (422, False, 2), answer
    assert gateway.stop() == 0  # SIGTERM: flush and close

    database = gateway.directory / "audit.db"
    found = rows(database)
    assert [row["seq"] for row in found] == list(range(1, len(found) + 1)), "one chain"
    assert {row["chain"] for row in found} == {"default"}
    by_id = {row["request_id"]: row for row in found}
    assert by_id["before"]["route"] == "accounts"  # request records share the chain
    expected: list[Expected] = [
        ("adm-reload", "admin:reload", "POST", 200, "allow", None, True, "generation:2"),
        ("adm-revoke-key", "admin:keys.revoke", "POST", 200, "allow", None, True,
         "key:" + KEY_DIGEST[:16]),
        ("adm-revoke-jti", "admin:tokens.revoke", "POST", 200, "allow", None, True,
         "jti:" + hashlib.sha256(JTI.encode()).hexdigest()),
        ("adm-bad-revoke", "admin:keys.revoke", "POST", 400, "deny", "admin.invalid_request",
         True, None),
        ("adm-wrong", "admin:reload", "POST", 401, "deny", "auth.invalid_token", False, None),
        ("adm-missing", "admin:keys.revoke", "POST", 401, "deny", "auth.missing_credentials",
         False, None),
        ("adm-status-wrong", "admin:status", "GET", 401, "deny", "auth.invalid_token", False,
         None),
        ("adm-reload-broken", "admin:reload", "POST", 422, "deny", "admin.reload_failed", True,
         "generation:2"),
    ]  # fmt: skip
    admin_rows = [row for row in found if (row["route"] or "").startswith("admin:")]
    assert [row["request_id"] for row in admin_rows] == [item[0] for item in expected]
    pseudonym = KEYS.pseudonym("127.0.0.1")
    for request_id, route, method, code, decision, reason, accepted, target in expected:
        row = by_id[request_id]
        assert (row["route"], row["method"], row["status"]) == (route, method, code), request_id
        assert (row["decision"], row["reason"]) == (decision, reason), request_id
        path = "/admin/api/v1/" + route.removeprefix("admin:").replace(".", "/")
        assert row["path_template"] == path
        assert row["consumer"] == (ACTOR if accepted else None), request_id
        assert row["auth_method"] == ("admin_token" if accepted else None), request_id
        assert row["client_ip"] == pseudonym
        findings = json.loads(row["findings"])
        assert findings == ([{"field": target, "rule_id": "admin.target"}] if target else [])
        assert row["bytes_out"] > 0
    # who: one keyed hash for the admin token, another for the wrong one, none for none
    admin_ids = {by_id[item[0]]["credential_id"] for item in expected if item[6]}
    assert len(admin_ids) == 1
    (admin_id,) = admin_ids
    assert re.fullmatch(r"adm:[0-9a-f]{16}", admin_id)
    assert by_id["adm-wrong"]["credential_id"] == by_id["adm-status-wrong"]["credential_id"]
    assert by_id["adm-wrong"]["credential_id"] not in (admin_id, None)
    assert by_id["adm-missing"]["credential_id"] is None

    assert_no_secret(found)
    for written in gateway.directory.rglob("*"):
        if written.is_file() and written.name != "dijk.yaml":
            content = written.read_bytes()
            for secret in (ADMIN_TOKEN, WRONG_TOKEN, API_KEY):
                assert secret.encode() not in content, f"a secret leaked into {written.name}"

    url = f"sqlite:///{database}"
    verified = dijk("audit", "verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    queried = dijk("audit", "query", "--db", url, "--consumer", ACTOR, "--format", "json")
    assert queried.returncode == 0, queried.stderr
    listed = [json.loads(line) for line in queried.stdout.splitlines()]
    assert [item["request_id"] for item in listed] == [item[0] for item in expected if item[6]]
    assert all(item["route"].startswith("admin:") for item in listed)


def test_a_reload_that_moves_the_log_is_recorded_in_the_old_and_the_new_chain(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(config(recording.port), env=ENV)
    ports = {"listen": gateway.config["listen"], "admin": gateway.config["admin"]}
    gateway.write_config({**config(recording.port, chain="second"), **ports})
    status, answer = admin(gateway, "adm-move", "reload")
    assert status == 200, answer
    assert gateway.stop() == 0
    database = gateway.directory / "audit.db"
    moved = [row for row in rows(database) if row["request_id"] == "adm-move"]
    assert [(row["chain"], row["seq"]) for row in moved] == [("default", 1), ("second", 1)]
    assert {(row["route"], row["decision"], row["findings"]) for row in moved} == {
        ("admin:reload", "allow", '[{"field":"generation:2","rule_id":"admin.target"}]')
    }
    verified = dijk("audit", "verify", "--db", f"sqlite:///{database}")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def store_up(gateway: GatewayProcess) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        return "dijk_audit_store_up 1.0" in response.read().decode()


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_with_on_sink_error_deny_an_action_is_refused_while_the_log_cannot_be_written(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    audit = {"durability": "strict", "on_sink_error": "deny"}
    gateway: GatewayProcess = start_gateway(config(recording.port, **audit), env=ENV)
    database = gateway.directory / "audit.db"
    key = {"X-API-Key": API_KEY}
    with closing(sqlite3.connect(database, isolation_level=None)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")  # the writer's commits wait 5 s, then fail
        # a refused admin request is answered even so, once its record is in the spool
        assert admin(gateway, "adm-refused", "reload", token=WRONG_TOKEN)[0] == 401
        assert not store_up(gateway)
        status, answer = admin(gateway, "adm-down", "keys/revoke", body={"sha256": KEY_DIGEST})
        assert (status, answer["reason"]) == (503, "audit.unavailable"), answer
        blocker.execute("ROLLBACK")
    wait_until(lambda: store_up(gateway))
    assert call(f"{gateway.url}/accounts/1", headers=key)[0] == 200, "nothing was revoked"
    assert gateway.stop() == 0
    found = {row["request_id"]: row for row in rows(database)}
    assert found["adm-refused"]["reason"] == "auth.invalid_token"
    row = found["adm-down"]
    assert (row["route"], row["status"], row["decision"]) == ("admin:keys.revoke", 503, "deny")
    assert (row["reason"], row["consumer"], row["findings"]) == ("audit.unavailable", ACTOR, "[]")
    verified = dijk("audit", "verify", "--db", f"sqlite:///{database}")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.postgres
def test_admin_actions_are_on_record_in_a_postgresql_chain(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    base = asyncio.run(postgres_url())
    table = f"admin_audit_{uuid.uuid4().hex[:12]}"
    url = f"{base}?table={table}"
    try:
        gateway: GatewayProcess = start_gateway(config(recording.port, url=url), env=ENV)
        assert admin(gateway, "pg-reload", "reload")[0] == 200
        body = {"sha256": KEY_DIGEST}
        assert admin(gateway, "pg-revoke", "keys/revoke", body=body)[0] == 200
        assert admin(gateway, "pg-wrong", "keys/revoke", token=WRONG_TOKEN, body=body)[0] == 401
        assert gateway.stop() == 0

        async def read() -> tuple[list[dict[str, Any]], bool]:
            async with open_store(url) as store:
                sealed = await store.read_chain("default", 0, 100)
                report = await verify_store(store, KEYS)
            return [_fields(row.record) for row in sealed], report.intact

        records, intact = asyncio.run(read())
        assert intact
        assert [(r["request_id"], r["route"], r["status"], r["consumer"]) for r in records] == [
            ("pg-reload", "admin:reload", 200, ACTOR),
            ("pg-revoke", "admin:keys.revoke", 200, ACTOR),
            ("pg-wrong", "admin:keys.revoke", 401, None),
        ]
        assert records[1]["findings"] == [("admin.target", "key:" + KEY_DIGEST[:16])]
        assert records[2]["reason"] == "auth.invalid_token"
        assert_no_secret(records)
    finally:

        async def drop() -> None:
            connection = await asyncpg.connect(base)
            try:
                await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
            finally:
                await connection.close()

        asyncio.run(drop())


def _fields(record: Any) -> dict[str, Any]:
    names = ("request_id", "route", "status", "decision", "reason", "consumer", "credential_id")
    values: dict[str, Any] = {name: getattr(record, name) for name in names}
    values["findings"] = [(item.rule_id, item.field) for item in record.findings]
    values["client_ip"] = record.client_ip
    return values
