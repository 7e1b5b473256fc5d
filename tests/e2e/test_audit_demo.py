"""The audit log's "done when", tried as a new user would, through the real `dijk demo` process:
demo traffic (allowed and denied) leaves at least one record per request; SIGTERM loses
nothing; `dijk audit verify --db sqlite:///...` exits 0, and 1 naming the record after one
field of one record is changed with the sqlite3 shell, or a record is deleted; `dijk audit
export --format cef|ecs` writes valid lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.demo import start_demo

CEF = re.compile(
    r"^CEF:0\|Dijk\|Dijk API Gateway\|[^|]+\|(?P<signature>[^|]+)\|[^|]+\|(?P<severity>\d+)\|"
    r"(?P<extension>.*)$"
)


def dijk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or os.environ.copy(),
        check=False,
    )


_SENT = iter(range(1_000_000))


def call(port: int, method: str, path: str, key: str | None = None) -> tuple[str, int]:
    """The request id the gateway gave the request and the status. The demo trusts its
    loopback load balancer (trusted_proxies: 127.0.0.1), so the well-formed id sent from
    here is the one the request is recorded under."""
    body = b'{"name":"A","email":"a@example.nl"}' if method == "POST" else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    request.add_header("X-Request-Id", f"from-the-balancer-{next(_SENT)}")
    if key:
        request.add_header("X-API-Key", key)
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.headers["X-Request-Id"], int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return error.headers["X-Request-Id"], int(error.code)


@pytest.fixture(scope="module")
def demo_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, int], dict[str, str]]:
    """Run the demo, send traffic, stop it with SIGTERM; return the data dir and what was sent."""
    data_dir = tmp_path_factory.mktemp("audit-demo") / ".dijk"
    running = start_demo(
        data_dir, strip_env=("DIJK_DEMO_KEY", "DIJK_AUDIT_KEY"), wait_for="Audit log: ", timeout=30
    )
    port = running.port
    keys = {
        "DIJK_DEMO_KEY_READ": running.read_key,
        "DIJK_DEMO_KEY_WRITE": running.write_key,
        "audit": next(line for line in running.lines if line.startswith("Audit log: ")),
    }
    try:
        assert "audit" in keys, "the demo did not say where its audit log is"
        read, write = keys["DIJK_DEMO_KEY_READ"], keys["DIJK_DEMO_KEY_WRITE"]
        sent: dict[str, int] = {}
        traffic = [
            ("GET", "/api/v1/status", None),
            ("GET", "/api/v1/accounts", read),
            ("GET", "/api/v1/accounts/1", read),
            ("GET", "/api/v1/accounts", None),
            ("GET", "/api/v1/accounts", "not-a-demo-key"),
            ("POST", "/api/v1/accounts", read),
            ("POST", "/api/v1/accounts", write),
            ("GET", "/api/v1/search?q=jan", read),
            ("GET", "/admin-export", write),  # no route: 404 (GETs under /api pass on)
        ]
        for _ in range(3):
            for method, path, key in traffic:
                request_id, status = call(port, method, path, key)
                sent[request_id] = status
    finally:
        code = running.stop(30)  # SIGTERM at once: the flush must not rely on time
    assert code == 0
    return data_dir, sent, keys


def sent_id(sent: dict[str, int], round_number: int, index: int) -> str:
    """The id of the ``index``-th request of round ``round_number`` (9 requests a round)."""
    return list(sent)[round_number * 9 + index]


def records(database: Path) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute("SELECT * FROM dijk_audit ORDER BY seq"))


def test_every_demo_request_is_recorded_after_sigterm_allowed_and_denied(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, sent, _ = demo_log
    found = {row["request_id"]: row for row in records(data_dir / "audit.db")}
    assert len(sent) == 27  # one id per request: the balancer's, each its own
    assert "chosen-by-the-client" not in found
    assert set(sent) <= set(found), "SIGTERM lost records"
    for request_id, status in sent.items():
        assert found[request_id]["status"] == status
    statuses = set(sent.values())
    assert {200, 401, 403, 404} <= statuses  # allowed and denied traffic
    denied = [found[request_id] for request_id, status in sent.items() if status >= 400]
    assert all(row["decision"] == "deny" and row["reason"] for row in denied)
    assert (data_dir / "audit.key").stat().st_mode & 0o777 == 0o600
    written = (data_dir / "audit.db").read_bytes()
    assert b"a@example.nl" not in written
    assert b"127.0.0.1" not in written


def test_verify_exits_0_for_the_demo_log(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, _, banner = demo_log
    url = f"sqlite:///{(data_dir / 'audit.db').resolve()}"
    assert url in banner["audit"] or str(data_dir.resolve()) in banner["audit"]
    result = dijk("audit", "verify", "--db", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit log intact" in result.stdout


def tampered(data_dir: Path, name: str, statement: str) -> str:
    copy = data_dir.parent / name
    copy.mkdir()
    shutil.copy(data_dir / "audit.db", copy / "audit.db")
    shutil.copy(data_dir / "audit.key", copy / "audit.key")
    subprocess.run(["sqlite3", str(copy / "audit.db"), statement], check=True, timeout=30)
    return f"sqlite:///{copy / 'audit.db'}"


def test_changing_one_field_of_one_record_with_the_sqlite3_shell_is_named(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, sent, _ = demo_log
    target = sent_id(sent, 1, 3)
    url = tampered(
        data_dir, "modified", f"UPDATE dijk_audit SET status = 200 WHERE request_id = '{target}';"
    )
    seq = next(row["seq"] for row in records(data_dir / "audit.db") if row["request_id"] == target)
    result = dijk("audit", "verify", "--db", url)
    assert result.returncode == 1
    assert f"first bad seq {seq}: modified" in result.stdout


def test_deleting_a_record_is_detected(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, sent, _ = demo_log
    target = sent_id(sent, 2, 0)
    url = tampered(data_dir, "deleted", f"DELETE FROM dijk_audit WHERE request_id = '{target}';")
    seq = next(row["seq"] for row in records(data_dir / "audit.db") if row["request_id"] == target)
    result = dijk("audit", "verify", "--db", url)
    assert result.returncode == 1
    assert f"first bad seq {seq}: deleted" in result.stdout


def test_cef_export_writes_one_valid_line_per_record(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, sent, _ = demo_log
    result = dijk(
        "audit", "export", "--db", f"sqlite:///{data_dir / 'audit.db'}", "--format", "cef"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(records(data_dir / "audit.db")) >= len(sent)
    for line in lines:
        match = CEF.match(line)
        assert match, line
        extension = dict(re.findall(r"(\w+)=((?:[^=\\]|\\.)*?)(?= \w+=|$)", match["extension"]))
        assert extension["externalId"]
        assert extension["requestMethod"]
        assert extension["act"] in ("allow", "deny", "monitor")
        assert int(extension["rt"]) > 0
    assert any("auth.missing_credentials" in line for line in lines)


def test_ecs_export_writes_one_json_document_per_record(
    demo_log: tuple[Path, dict[str, int], dict[str, str]],
) -> None:
    data_dir, sent, _ = demo_log
    result = dijk(
        "audit", "export", "--db", f"sqlite:///{data_dir / 'audit.db'}", "--format", "ecs"
    )
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) >= len(sent)
    ids = {document["http"]["request"]["id"] for document in documents}
    assert set(sent) <= ids
    for document in documents:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", document["@timestamp"])
        assert document["ecs"]["version"]
        assert document["event"]["kind"] == "event"
        assert document["event"]["outcome"] in ("success", "failure")
        assert isinstance(document["http"]["response"]["status_code"], int)
