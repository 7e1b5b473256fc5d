"""API discovery as a new user tries it: mixed traffic against the demo, then
``dijk discover openapi`` and ``dijk discover diff`` on its database, and on a HAR file
with no gateway running."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from tests.support.demo import start_demo

DEMO_SPEC = str(resources.files("dijk.demo").joinpath("openapi.yaml"))


@dataclass
class Traffic:
    data_dir: Path
    admin: dict[str, bytes]
    metrics: str


def _call(port: int, method: str, path: str, key: str | None, body: object = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    if key:
        request.add_header("X-API-Key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _admin(port: int, path: str, token: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


def dijk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    data_dir = tmp_path_factory.mktemp("discovery-demo")
    # The demo makes its own admin token and prints it; start_demo reads it.
    demo = start_demo(data_dir)
    try:
        read, write = demo.read_key, demo.write_key
        statuses = []
        for number in range(1, 31):
            statuses.append(_call(demo.port, "GET", f"/api/v1/accounts/{number}", read))
        statuses.append(_call(demo.port, "GET", "/api/v1/accounts?limit=5", read))
        for index in range(3):
            body = {"name": f"Klant {index}", "email": f"klant{index}@example.nl"}
            statuses.append(_call(demo.port, "POST", "/api/v1/accounts", write, body))
        statuses.append(_call(demo.port, "GET", "/api/v1/search?q=jan", read))
        statuses.append(_call(demo.port, "GET", "/api/v1/status", None))
        statuses.append(_call(demo.port, "GET", "/api/v0/accounts/7", read))
        statuses.append(_call(demo.port, "GET", "/wp-login.php", None))
        assert statuses.count(200) >= 33
        assert 201 in statuses
        admin = {
            "openapi": _admin(demo.admin_port, "/admin/api/v1/discovery/openapi", demo.admin_token),
            "diff": _admin(demo.admin_port, "/admin/api/v1/discovery/diff", demo.admin_token),
        }
        with urllib.request.urlopen(
            f"http://127.0.0.1:{demo.admin_port}/metrics", timeout=5
        ) as response:
            metrics = response.read().decode()
    finally:
        assert demo.stop(30) == 0  # SIGTERM flushes the inventory
    return Traffic(data_dir, admin, metrics)


def test_discover_openapi_prints_a_valid_document_with_one_template(traffic: Traffic) -> None:
    db = f"sqlite:///{traffic.data_dir}/audit.db"
    result = dijk("discover", "openapi", "--db", db)
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    validate(document)
    paths = document["paths"]
    assert "/api/v1/accounts/{id}" in paths
    assert not [path for path in paths if path.startswith("/api/v1/accounts/") and "{" not in path]
    account = paths["/api/v1/accounts/{id}"]["get"]
    assert account["x-dijk-count"] == 30
    assert "x-dijk-first-seen" in account
    assert "x-dijk-last-seen" in account
    post = paths["/api/v1/accounts"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"name", "email"} <= set(schema["properties"])
    assert schema["properties"]["email"]["format"] == "email"
    assert "/wp-login.php" not in paths  # answered 404 by the gateway: not an API
    assert "klant0@example.nl" not in result.stdout  # shapes, never values


def test_discover_diff_names_the_legacy_endpoint_as_shadow(traffic: Traffic) -> None:
    db = f"sqlite:///{traffic.data_dir}/audit.db"
    result = dijk("discover", "diff", "--db", db, "--spec", DEMO_SPEC, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    shadows = [f for f in report["findings"] if f["rule_id"] == "discovery.shadow_endpoint"]
    assert [finding["location"]["url"] for finding in shadows] == ["/api/v0/accounts/{id}"]
    assert "email" in shadows[0]["evidence"]["pii_categories"]
    gate = dijk("discover", "diff", "--db", db, "--spec", DEMO_SPEC, "--fail-on", "medium")
    assert gate.returncode == 1
    assert "GET /api/v0/accounts/{id}" in gate.stdout


def test_admin_api_and_metrics_show_the_inventory(traffic: Traffic) -> None:
    document = json.loads(traffic.admin["openapi"])
    validate(document)
    assert "/api/v0/accounts/{id}" in document["paths"]
    report = json.loads(traffic.admin["diff"])
    assert any(f["rule_id"] == "discovery.shadow_endpoint" for f in report["findings"])
    assert "dijk_discovery_shadow_endpoints 1.0" in traffic.metrics
    assert "dijk_discovery_endpoints" in traffic.metrics


def test_discover_openapi_from_a_har_file_without_a_gateway(tmp_path: Path) -> None:
    entries = [
        {
            "startedDateTime": f"2026-12-01T10:00:{second:02d}Z",
            "request": {"method": "GET", "url": f"https://api.test/v2/orders/{1000 + second}"},
            "response": {
                "status": 200,
                "content": {"mimeType": "application/json", "text": '{"id": 1, "total": 9.5}'},
            },
        }
        for second in range(5)
    ]
    har = tmp_path / "capture.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    result = dijk("discover", "openapi", "--har", str(har), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document)
    assert list(document["paths"]) == ["/v2/orders/{id}"]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.har"
    broken.write_text("{not json")
    result = dijk("discover", "openapi", "--har", str(broken))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    neither = dijk("discover", "openapi")
    assert neither.returncode == 2
    missing = dijk("discover", "openapi", "--db", f"sqlite:///{tmp_path}/none.db")
    assert missing.returncode == 2
    assert "no database" in missing.stderr
