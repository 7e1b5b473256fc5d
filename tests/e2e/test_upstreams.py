"""Upstreams with several ``https://`` targets against a real ``dijk serve``: certificates
from a CA made here are verified; a stopped target is ejected and every request goes to
the other; a target whose certificate no configured CA signed is refused with 502
``upstream.tls_untrusted``; with no healthy target left the answer is 503
``upstream.no_healthy_target``."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.e2e.test_mtls_e2e import Authority, _name
from tests.support.gateway import GatewayProcess, base_config, wait_for
from tests.support.gateway import log_events as events


class _Handler(BaseHTTPRequestHandler):
    server: _Target  # type: ignore[assignment]

    def do_GET(self) -> None:
        body = self.server.label.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Target(ThreadingHTTPServer):
    """An HTTPS target answering every GET with its label (HTTP/1.0: one request each)."""

    daemon_threads = True

    def __init__(self, label: str, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.label = label
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def get(gateway: GatewayProcess, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(gateway.url + path, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GatewayProcess, _Target, _Target]]:
    ca = Authority(tmp_path, "upstreams")
    ip = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    first = ca.issue("first", _name("127.0.0.1"), ip, server=True)
    second = ca.issue("second", _name("127.0.0.1"), ip, server=True)
    rogue_ca = Authority(tmp_path, "rogue")
    rogue = rogue_ca.issue("rogue", _name("127.0.0.1"), ip, server=True)
    a = _Target("a", first.cert, first.key)
    b = _Target("b", second.cert, second.key)
    untrusted = _Target("rogue", rogue.cert, rogue.key)
    config = base_config(
        1,
        upstreams={
            "bank": {
                "targets": [{"url": a.url}, {"url": b.url}],
                "tls": {"ca_file": str(ca.path)},
                "health_check": {
                    "path": "/healthz",
                    "interval_s": 0.3,
                    "timeout_s": 2,
                    "unhealthy_after": 1,
                },
                "passive_health": {"failures": 1, "eject_s": 60},
            },
            "rogue": {"url": untrusted.url, "tls": {"ca_file": str(ca.path)}},
        },
        routes=[
            {"name": "rogue", "match": {"path_prefix": "/rogue"}, "upstream": "rogue"},
            {"name": "bank", "match": {"path_prefix": "/"}, "upstream": "bank"},
        ],
        audit={"enabled": False},
    )
    gateway = GatewayProcess(config, tmp_path)
    try:
        yield gateway.start(timeout=60), a, b
    finally:
        gateway.stop()
        for target in (a, b, untrusted):
            target.stop()


def test_a_stopped_https_target_is_ejected_and_the_other_serves_every_request(
    setup: tuple[GatewayProcess, _Target, _Target],
) -> None:
    gateway, _a, b = setup
    answers = [get(gateway, "/accounts") for _ in range(10)]
    assert {status for status, _ in answers} == {200}
    assert {body for _, body in answers} == {b"a", b"b"}  # round robin over both, verified TLS

    b.stop()
    # From the moment it stops: a failed connection to b is retried on a (nothing was sent
    # to b), and b is ejected; every request is answered by a.
    answers = [get(gateway, "/accounts") for _ in range(20)]
    assert answers == [(200, b"a")] * 20
    assert wait_for(lambda: bool(events(gateway, "upstream_target_down")))
    down = events(gateway, "upstream_target_down")[0]
    assert down["target"] == b.url


def test_no_healthy_target_left_is_503_with_its_own_reason(
    setup: tuple[GatewayProcess, _Target, _Target],
) -> None:
    gateway, a, b = setup
    a.stop()
    b.stop()
    assert wait_for(lambda: len(events(gateway, "upstream_target_down")) == 2)
    status, body = get(gateway, "/accounts")
    assert status == 503
    assert json.loads(body)["reason"] == "upstream.no_healthy_target"


def test_an_untrusted_upstream_certificate_is_refused_with_502_and_a_clear_reason(
    setup: tuple[GatewayProcess, _Target, _Target],
) -> None:
    gateway, _, _ = setup
    status, body = get(gateway, "/rogue/x")
    assert status == 502
    problem = json.loads(body)
    assert problem["reason"] == "upstream.tls_untrusted"
    assert "certificate" in problem["detail"]
