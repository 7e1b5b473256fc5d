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
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.test_decision_nginx import require_nginx, start_nginx
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
    nginx = require_nginx()
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
        port = free_port()
        decision_port = config["decision"]["listen"]["port"]
        server, _ = start_nginx(nginx, base / "nginx", port, decision_port, upstream.port)
        yield Stack(port, upstream)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        dijk.stop()
        upstream.stop()


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
