"""Privacy as a new user tries it: the real `dijk demo`, masked, recorded, reported.

One demo process for the module: traffic first (accounts, one account, search, GraphQL, a
new account, a good and a bad login with passwords), then SIGTERM (the data map is
flushed on shutdown), then the data directory and the reports are examined.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dijk.demo.upstream import DEMO_PASSWORD
from tests.support.demo import start_demo

WRONG_PASSWORD = "Wr0ng-Pa55word-7f3e9c"
NEW_EMAIL = "nieuwe.klant.e2e@example.nl"


@dataclass
class Demo:
    port: int
    upstream_port: int
    read_key: str
    write_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    secrets: set[str] = field(default_factory=set)
    responses: dict[str, bytes] = field(default_factory=dict)
    exit_code: int | None = None

    def call(
        self, method: str, path: str, key: str | None = None, body: object = None, upstream=False
    ) -> tuple[int, dict[str, str], bytes]:
        port = self.upstream_port if upstream else self.port
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
        if key:
            request.add_header("X-API-Key", key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                headers = {k.lower(): v for k, v in response.headers.items()}
                return response.status, headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def dijk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("privacy-demo")
    data_dir = root / ".dijk"
    log = root / "demo.log"  # the gateway's logs, kept outside the data dir but examined
    with log.open("wb") as stderr:
        started = start_demo(data_dir, stderr=stderr, cwd=root)
    running = Demo(
        started.port,
        started.upstream_port,
        started.read_key,
        started.write_key,
        started.process,
        data_dir,
        log,
    )
    try:
        _traffic(running)
    finally:
        running.exit_code = started.stop(30)
    yield running
    if started.process.poll() is None:
        started.process.kill()


def _traffic(demo: Demo) -> None:
    status, _, raw = demo.call("GET", "/api/v1/accounts?limit=500", upstream=True)
    assert status == 200
    accounts = json.loads(raw)["accounts"]
    for account in accounts:
        demo.secrets.update({account["email"], account["iban"]})
    customer = accounts[0]["email"]
    demo.secrets.update({demo.read_key, demo.write_key, DEMO_PASSWORD, WRONG_PASSWORD, NEW_EMAIL})
    demo.responses["accounts"] = _ok(demo.call("GET", "/api/v1/accounts", demo.read_key))
    demo.responses["account"] = _ok(demo.call("GET", "/api/v1/accounts/1", demo.read_key))
    demo.responses["search"] = _ok(
        demo.call("GET", "/api/v1/search?q=" + customer.split("@")[0][:4], demo.read_key)
    )
    demo.responses["graphql"] = _ok(
        demo.call(
            "POST", "/graphql", demo.read_key, {"query": "{ accounts(limit: 5) { email iban } }"}
        )
    )
    status, _, body = demo.call(
        "POST", "/api/v1/accounts", demo.write_key, {"name": "Nieuwe Klant", "email": NEW_EMAIL}
    )
    assert status == 201, body
    demo.responses["created"] = body
    status, _, body = demo.call(
        "POST", "/api/v1/login", None, {"username": customer, "password": DEMO_PASSWORD}
    )
    assert status == 200, body
    status, _, _ = demo.call(
        "POST", "/api/v1/login", None, {"username": customer, "password": WRONG_PASSWORD}
    )
    assert status == 401


def _ok(answer: tuple[int, dict[str, str], bytes]) -> bytes:
    status, headers, body = answer
    assert status == 200, body
    assert int(headers["content-length"]) == len(body)
    json.loads(body)  # still JSON
    return body


def test_accounts_through_the_gateway_show_no_raw_email_or_iban(demo: Demo) -> None:
    body = demo.responses["accounts"]
    accounts = json.loads(body)["accounts"]
    assert accounts
    assert all(re.fullmatch(r".\*\*\*@.+", item["email"]) for item in accounts)
    assert all(re.fullmatch(r"\*{14}[0-9]{4}", item["iban"]) for item in accounts)
    for name in ("accounts", "account", "search", "graphql", "created"):
        leaked = [value for value in demo.secrets if value.encode() in demo.responses[name]]
        assert not leaked, (name, leaked)


def test_no_file_under_the_data_dir_holds_raw_personal_data_or_credentials(demo: Demo) -> None:
    assert demo.exit_code == 0
    files = [
        path
        for path in demo.data_dir.rglob("*")
        if path.is_file() and "upstream" not in path.relative_to(demo.data_dir).parts
    ]
    names = {path.name for path in files}
    assert "audit.db" in names
    assert "keyring.json" in names
    assert "privacy-pseudonym.key" in names
    for path in [*files, demo.log]:
        data = path.read_bytes()
        found = [value for value in demo.secrets if value.encode() in data]
        assert not found, (str(path), found)
    # the upstream's own journal does hold the new account: the search works
    journal = demo.data_dir / "upstream" / "accounts.jsonl"
    assert NEW_EMAIL.encode() in journal.read_bytes()


def test_privacy_report_maps_email_and_iban_to_the_accounts_endpoint(demo: Demo) -> None:
    db = f"sqlite:///{demo.data_dir / 'audit.db'}"
    result = dijk("privacy", "report", "--db", db, "--format", "json")
    assert result.returncode == 0, result.stderr
    register = json.loads(result.stdout)
    endpoints = {(item["method"], item["endpoint"]): item for item in register["processing"]}
    accounts = endpoints[("GET", "/api/v1/accounts")]
    assert {"email", "iban"} <= set(accounts["personal_data"]["response"])
    assert [r["consumer"] for r in accounts["recipients"]] == ["demo-read"]
    login = endpoints[("POST", "/api/v1/login")]
    assert "secret" in login["personal_data"]["request"]  # the password's category, not value
    assert any(
        finding["kind"] == "unneeded_category" and finding["category"] == "bsn"
        for finding in register["findings"]
    )
    result = dijk("privacy", "report", "--db", db, "--format", "csv")
    assert result.returncode == 0
    assert "/api/v1/accounts" in result.stdout


def test_breach_report_prints_the_deadline_72_hours_after_detection(demo: Demo) -> None:
    db = f"sqlite:///{demo.data_dir / 'audit.db'}"
    detected = datetime.now(UTC).replace(microsecond=0)
    result = dijk(
        "breach",
        "report",
        "--db",
        db,
        "--since",
        "1h",
        "--consumer",
        "demo-read",
        "--detected",
        detected.isoformat(),
    )
    assert result.returncode == 0, result.stderr
    deadline = (detected + timedelta(hours=72)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"**{deadline}**" in result.stdout
    assert "/api/v1/accounts" in result.stdout
    as_json = dijk(
        "breach", "report", "--db", db, "--since", "1h", "--ip", "127.0.0.1/32", "-f", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["totals"]["records"] >= 4
    assert report["totals"]["distinct_subjects_by_category"]["email"] >= 20


def test_keys_rotate_reencrypts_the_pseudonym_key_and_reports_still_work(demo: Demo) -> None:
    key_file = demo.data_dir / "privacy-pseudonym.key"
    before = key_file.read_bytes()
    result = dijk("keys", "rotate", "--data-dir", str(demo.data_dir), "--reencrypt")
    assert result.returncode == 0, result.stderr
    assert "added key version 2" in result.stdout
    assert key_file.read_bytes() != before
    db = f"sqlite:///{demo.data_dir / 'audit.db'}"
    again = dijk(
        "breach", "report", "--db", db, "--since", "1h", "--ip", "127.0.0.1/32", "-f", "json"
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["totals"]["records"] >= 4
