"""What Debian's nginx forwards with the shipped auth_request example: exactly what Dijk
judged, and nothing Dijk inline would have stripped.

A recording upstream stands behind nginx, so each test checks both the client's answer and
what reached the API. nginx forwards the path as the client sent it; Dijk refuses a path it
would have to normalise into another one (``/admin//../open/x`` is ``/open/x`` to Dijk and
``/admin/open/x`` to an upstream that keeps empty segments).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.test_decision_nginx import nginx_binary, nginx_conf
from tests.support.gateway import GatewayProcess, base_config, free_port
from tests.support.upstream import RecordingUpstream


@dataclass
class Stack:
    port: int
    upstream: RecordingUpstream

    def send(self, target: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
        data = (
            f"GET {target} HTTP/1.1\r\nHost: api.example\r\n{headers}Connection: close\r\n\r\n"
        ).encode("latin-1")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), fields, body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = nginx_binary()
    require_service(nginx is not None, "nginx is not installed (make install adds nginx-light)")
    assert nginx is not None
    base = tmp_path_factory.mktemp("decision-nginx-forwarding")
    upstream = RecordingUpstream().start()
    config = base_config(
        upstream.port,
        routes=[
            {"name": "open", "match": {"path_prefix": "/open"}, "upstream": "echo", "auth": []},
            {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": "echo"},
        ],
        decision={"listen": {"address": "127.0.0.1", "port": free_port()}, "inline": False},
    )
    config["routes"][1]["auth"] = ["api_key"]
    config["auth"] = {"api_key": {"header": "X-API-Key"}}
    dijk = GatewayProcess(config, base).start(timeout=60)
    server: subprocess.Popen[bytes] | None = None
    try:
        prefix = base / "nginx"
        prefix.mkdir()
        port = free_port()
        conf = nginx_conf(prefix, port, config["decision"]["listen"]["port"], upstream.port)
        server = subprocess.Popen(
            [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait(port, server, prefix / "error.log")
        yield Stack(port, upstream)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        dijk.stop()
        upstream.stop()


def _wait(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not listen in time")


def test_a_dot_segment_after_a_double_slash_is_refused_and_not_forwarded(stack: Stack) -> None:
    stack.upstream.reset()
    status, _, body = stack.send("/admin//../open/x")
    assert status == 400
    assert json.loads(body)["reason"] == "decision.path_not_normal"
    assert stack.upstream.requests == []
    status, _, _ = stack.send("/open/x")
    assert status == 200
    assert [request.target for request in stack.upstream.requests] == ["/open/x"]


def test_nginx_forwards_no_method_override_nor_a_client_chosen_address(stack: Stack) -> None:
    stack.upstream.reset()
    status, _, _ = stack.send(
        "/open/x",
        "X-HTTP-Method-Override: DELETE\r\nX-Original-URL: /admin\r\n"
        "True-Client-IP: 203.0.113.7\r\nX-Forwarded-For: 203.0.113.7\r\n"
        "X-Real-IP: 203.0.113.7\r\nX-Dijk-Consumer: admin\r\n",
    )
    assert status == 200
    (received,) = stack.upstream.requests
    names = {name for name, _ in received.headers}
    for name in ("x-http-method-override", "x-original-url", "true-client-ip", "x-dijk-consumer"):
        assert name not in names, name
    assert received.header_values("x-forwarded-for") == ["127.0.0.1"]
    assert received.header_values("x-real-ip") == ["127.0.0.1"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
