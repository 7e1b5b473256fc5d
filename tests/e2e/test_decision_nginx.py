"""Debian's real nginx in front of the demo bank, asking Dijk (auth_request) about every
request, with the shipped example configuration (deploy/nginx/dijk-auth-request.conf).

Dijk runs as a decision service only (``decision.inline: false``) with the demo's routes:
nginx answers 200 with the read key, 401 without a key, 403 for the read key on a write
route, 429 past the rate limit and 403 ``waf.sqli`` for a UNION injection in ``q``, each
refusal with Dijk's problem document, and every request is one record in Dijk's audit log.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dijk.cli.demo import demo_config_text, start_upstream, stop_process, wait_for_port
from tests.conftest import REPO, require_service
from tests.support.gateway import GatewayProcess, free_port

READ_KEY = "dk_read_nginx-e2e-read-key-0123456789"
WRITE_KEY = "dk_write_nginx-e2e-write-key-012345678"
EXAMPLE = REPO / "deploy" / "nginx" / "dijk-auth-request.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None
    )


def decision_config(data_dir: Path, upstream_port: int) -> dict[str, object]:
    """The demo's configuration, serving decisions only, on free loopback ports."""
    config = yaml.safe_load(demo_config_text())
    config["listen"]["port"] = free_port()
    config["admin"]["port"] = free_port()
    config["upstreams"]["bank"]["url"] = f"http://127.0.0.1:{upstream_port}"
    config["audit"] = {"url": f"sqlite:///{data_dir / 'audit.db'}", "durability": "batched"}
    config["decision"] = {
        "listen": {"address": "127.0.0.1", "port": free_port()},
        "inline": False,
    }
    return config


def require_nginx() -> str:
    """The nginx binary; skips (fails under CI) when it is not installed."""
    nginx = nginx_binary()
    require_service(nginx is not None, "nginx is not installed (make install adds nginx-light)")
    assert nginx is not None
    return nginx


def nginx_conf(prefix: Path, port: int, decision_port: int, upstream_port: int) -> Path:
    """The example server block on test ports, inside a minimal self-contained nginx.conf."""
    server = (
        EXAMPLE.read_text()
        .replace("127.0.0.1:8181", f"127.0.0.1:{decision_port}")
        .replace("127.0.0.1:8081", f"127.0.0.1:{upstream_port}")
        .replace("listen 127.0.0.1:8000", f"listen 127.0.0.1:{port}")
    )
    assert f"127.0.0.1:{decision_port}" in server, "the example's ports changed"
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{server}
}}
"""
    )
    return conf


@dataclass
class Stack:
    port: int
    dijk: GatewayProcess
    database: Path
    ids: list[str]

    def call(
        self, path: str, key: str | None = None, method: str = "GET", body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method
        )
        if key is not None:
            request.add_header("X-API-Key", key)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                result = response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            result = error.code, dict(error.headers.items()), error.read()
        headers = {name.lower(): value for name, value in result[1].items()}
        self.ids.append(headers.get("x-request-id", ""))
        return result[0], headers, result[2]


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> str:
    """Wait until nginx answers; the request id of the answer (Dijk decided on it too)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                return str(response.headers["X-Request-Id"])
        except urllib.error.HTTPError as error:
            return str(error.headers["X-Request-Id"])  # here Dijk's refusal: 404
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not listen in time")


def start_nginx(
    nginx: str, prefix: Path, port: int, decision_port: int, upstream_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx with the example configuration on ``port``, answering; the probe's request id."""
    prefix.mkdir()
    conf = nginx_conf(prefix, port, decision_port, upstream_port)
    server = subprocess.Popen(
        [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        return server, _wait_for(port, server, prefix / "error.log")
    except BaseException:
        server.terminate()
        server.wait(10)
        raise


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = require_nginx()
    base = tmp_path_factory.mktemp("decision-nginx")
    data_dir = base / "data"
    data_dir.mkdir()
    upstream_port = free_port()
    upstream = start_upstream(upstream_port, data_dir)
    dijk: GatewayProcess | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(upstream_port, upstream)
        config = decision_config(data_dir, upstream_port)
        (base / "dijk").mkdir()
        dijk = GatewayProcess(
            config,
            base / "dijk",
            {"DIJK_DEMO_KEY_READ": READ_KEY, "DIJK_DEMO_KEY_WRITE": WRITE_KEY},
        ).start(timeout=60)
        decision_port = int(config["decision"]["listen"]["port"])  # type: ignore[index]
        port = free_port()
        server, probe = start_nginx(nginx, base / "nginx", port, decision_port, upstream_port)
        yield Stack(port, dijk, data_dir / "audit.db", [probe])
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        if dijk is not None:
            dijk.stop()
        stop_process(upstream)


def problem(body: bytes) -> dict[str, object]:
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


def test_nginx_passes_the_read_key_to_the_bank_with_the_consumer(stack: Stack) -> None:
    status, headers, body = stack.call("/api/v1/accounts/1", READ_KEY)
    assert status == 200, body
    assert json.loads(body)["id"] == 1
    assert len(headers["x-request-id"]) == 32


def test_nginx_refuses_a_request_without_key_with_dijks_401_problem(stack: Stack) -> None:
    status, headers, body = stack.call("/api/v1/accounts")
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    document = problem(body)
    assert document["reason"] == "auth.missing_credentials"
    assert document["request_id"] == headers["x-request-id"]
    assert "ApiKey" in headers["www-authenticate"]


def test_nginx_refuses_the_read_key_on_a_write_route_with_403_scope(stack: Stack) -> None:
    status, headers, body = stack.call(
        "/api/v1/accounts", READ_KEY, "POST", b'{"name":"A","email":"a@example.nl"}'
    )
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert problem(body)["reason"] == "authz.insufficient_scope"


def test_nginx_refuses_a_union_injection_in_q_with_403_waf_sqli(stack: Stack) -> None:
    status, headers, body = stack.call(
        "/api/v1/search?q=x%27%20UNION%20SELECT%20password%20FROM%20users--", READ_KEY
    )
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert problem(body)["reason"] == "waf.sqli"


def test_nginx_answers_404_for_an_unknown_path_with_dijks_problem(stack: Stack) -> None:
    """A status nginx's auth_request cannot take from a subrequest reaches the client."""
    status, _, body = stack.call("/admin-export", READ_KEY)
    assert status == 404
    assert problem(body)["reason"] == "route.not_found"


def test_nginx_refuses_past_the_rate_limit_with_429_and_retry_after(stack: Stack) -> None:
    statuses = []
    for _ in range(130):  # accounts-list allows 100 per 10 s per consumer
        status, headers, body = stack.call("/api/v1/accounts", WRITE_KEY)
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 200
    assert statuses[-1] == 429, statuses
    assert problem(body)["reason"] == "ratelimit.exceeded"
    assert int(headers["retry-after"]) >= 1


def test_every_request_through_nginx_is_one_audit_record(stack: Stack) -> None:
    """Runs last in this module: it stops Dijk so that the audit log is flushed."""
    assert stack.ids, "no request was made"
    assert all(stack.ids), "a response had no X-Request-Id"
    assert stack.dijk.stop() == 0
    with closing(sqlite3.connect(stack.database)) as connection:
        rows = list(connection.execute("SELECT request_id, status, reason FROM dijk_audit"))
    by_id: dict[str, list[tuple[int, str]]] = {}
    for request_id, status, reason in rows:
        by_id.setdefault(request_id, []).append((status, reason))
    assert len(rows) == len(stack.ids), "one record per request, no more, no fewer"
    for request_id in stack.ids:
        assert len(by_id.get(request_id, [])) == 1, request_id
    reasons = {reason for records in by_id.values() for _, reason in records}
    assert {"auth.missing_credentials", "authz.insufficient_scope", "waf.sqli"} <= reasons
    assert "ratelimit.exceeded" in reasons


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
