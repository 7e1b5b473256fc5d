"""`dijk demo` as a new user runs it: keys printed, the Polder Bank behind the gateway."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.demo import start_demo


@dataclass
class Demo:
    port: int
    admin_port: int
    read_key: str
    write_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, data=body
        )
        if key:
            request.add_header("X-API-Key", key)
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return (
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read(),
                )
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo") / ".dijk", timeout=30)
    yield Demo(
        running.port,
        running.admin_port,
        running.read_key,
        running.write_key,
        running.process,
        running.data_dir,
    )
    assert running.stop(20) == 0


def test_status_is_public_and_carries_a_request_id(demo: Demo) -> None:
    status, headers, body = demo.call("GET", "/api/v1/status")
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    assert json.loads(body)["status"] == "ok"


def test_three_mib_json_body_is_refused_with_413_problem(demo: Demo) -> None:
    status, headers, body = demo.call(
        "POST", "/api/v1/accounts", demo.write_key, b"[" + b"1," * (3 * 1024 * 1024 // 2) + b"1]"
    )
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["reason"] == "limits.body_too_large"
    assert "1048576" in problem["detail"]


def test_unknown_path_is_404_problem(demo: Demo) -> None:
    # Outside /api: under it, the demo's catch-all route passes GETs on (monitor mode).
    status, headers, body = demo.call("GET", "/admin-export", demo.write_key)
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["reason"] == "route.not_found"


def test_missing_and_wrong_keys_get_401_with_challenge(demo: Demo) -> None:
    status, headers, body = demo.call("GET", "/api/v1/accounts")
    assert status == 401
    assert "www-authenticate" in headers
    assert json.loads(body)["reason"] == "auth.missing_credentials"
    status, _, body = demo.call("GET", "/api/v1/accounts", "not-a-demo-key")
    assert status == 401
    assert json.loads(body)["reason"] == "auth.invalid_key"


def test_read_key_reads_but_cannot_write(demo: Demo) -> None:
    status, _, body = demo.call("GET", "/api/v1/accounts", demo.read_key)
    assert status == 200
    assert json.loads(body)["count"] > 0
    status, headers, body = demo.call(
        "POST", "/api/v1/accounts", demo.read_key, b'{"name":"A","email":"a@example.nl"}'
    )
    assert status == 403
    assert json.loads(body)["reason"] == "authz.insufficient_scope"
    assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_write_key_creates_an_account(demo: Demo) -> None:
    status, _, body = demo.call(
        "POST", "/api/v1/accounts", demo.write_key, b'{"name":"Anne","email":"anne@example.nl"}'
    )
    assert status == 201
    assert json.loads(body)["name"] == "Anne"


def test_method_not_declared_is_405(demo: Demo) -> None:
    status, headers, _ = demo.call("DELETE", "/api/v1/accounts/1", demo.write_key)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_admin_health_and_metrics(demo: Demo) -> None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{demo.admin_port}/healthz", timeout=5
    ) as response:
        assert response.status == 200
    with urllib.request.urlopen(
        f"http://127.0.0.1:{demo.admin_port}/metrics", timeout=5
    ) as response:
        text = response.read().decode()
    assert 'dijk_requests_total{reason="route.not_found",route="",status="404"}' in text
    assert "dijk_request_duration_seconds_bucket" in text


def test_demo_print_config_is_the_shipped_file_and_valid(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dijk", "demo", "--print-config"], capture_output=True, check=True
    )
    path = tmp_path / "demo.yaml"
    path.write_bytes(out.stdout)
    env = {**os.environ, "DIJK_DEMO_KEY_READ": "r" * 20, "DIJK_DEMO_KEY_WRITE": "w" * 20}
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "config", "validate", str(path)],
        capture_output=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"routes:" in out.stdout
    assert b"/api/v1/accounts" in out.stdout
