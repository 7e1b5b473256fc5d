"""Alert rules through a real gateway: repeated authentication failures from one client
post one alert to a local webhook receiver; SIEM copies reach a local syslog receiver."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dijk.audit.keys import AuditKeys
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

SECRET = "e2e-alerts-secret-0123456789abcdefghijkl"
API_KEY = "dk_e2e_alerts_" + "k" * 24


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def call(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


def test_auth_failures_from_one_client_post_one_alert_and_syslog_gets_copies(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.settimeout(5)
    Hook.received = []
    try:
        config = base_config(
            recording.port,
            audit={
                "url": "sqlite:///./audit.db",
                "sinks": [
                    {
                        "type": "syslog",
                        "url": f"udp://127.0.0.1:{syslog.getsockname()[1]}",
                        "flush_interval_ms": 50,
                    }
                ],
            },
            alerts={
                "webhook": {"url": f"http://127.0.0.1:{hook.server_port}/hook"},
                "rules": [
                    {"name": "auth-failures", "reasons": ["auth.*"], "threshold": 5, "window_s": 60}
                ],
            },
            consumers=[{"name": "alice", "api_keys": [{"env": "E2E_ALERT_KEY"}]}],
            auth={"api_key": {"header": "X-API-Key"}},
            routes=[
                {
                    "name": "api",
                    "match": {"path_prefix": "/"},
                    "upstream": "echo",
                    "auth": ["api_key"],
                }
            ],
        )
        gateway: GatewayProcess = start_gateway(
            config, env={"DIJK_AUDIT_KEY": SECRET, "E2E_ALERT_KEY": API_KEY}
        )
        for number in range(12):
            assert call(f"{gateway.url}/x/{number}", {"X-API-Key": "dk_bad_" + "z" * 24}) == 401
        assert call(f"{gateway.url}/ok", {"X-API-Key": API_KEY}) == 200
        deadline = time.monotonic() + 10
        while not Hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
        messages = []
        while len(messages) < 13:
            messages.append(syslog.recv(65536).decode())
        gateway.stop()
    finally:
        hook.shutdown()
        syslog.close()
    assert len(Hook.received) == 1  # 12 failures, threshold 5: fires once, then cooldown
    alert = Hook.received[0]
    assert (alert["rule"], alert["per"], alert["count"]) == ("auth-failures", "client_ip", 6)
    assert alert["key"] == AuditKeys.from_secret(SECRET.encode()).pseudonym("127.0.0.1")
    assert "127.0.0.1" not in json.dumps(alert)
    assert all(message.startswith("<") and " dijk - audit " in message for message in messages)
    assert sum('"status_code":401' in message for message in messages) == 12
