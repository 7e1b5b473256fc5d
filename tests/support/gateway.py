"""Start a real ``dijk serve`` process on loopback ports for end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_config(upstream_port: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 1,
        "listen": {"address": "127.0.0.1", "port": free_port()},
        "admin": {"address": "127.0.0.1", "port": free_port()},
        "upstreams": {"echo": {"url": f"http://127.0.0.1:{upstream_port}"}},
        "routes": [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "echo"}],
    }
    config.update(overrides)
    return config


class GatewayProcess:
    def __init__(self, config: dict[str, Any], directory: Path, env: dict[str, str] | None = None):
        self.config = config
        self.directory = directory
        self.path = directory / "dijk.yaml"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "gateway.log"

    @property
    def port(self) -> int:
        return int(self.config["listen"]["port"])

    @property
    def admin_port(self) -> int:
        return int(self.config["admin"]["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict[str, Any] | None = None, text: str | None = None) -> None:
        if config is not None:
            self.config = config
        self.path.write_text(text if text is not None else yaml.safe_dump(self.config))

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.write_config()
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dijk", "serve", "-c", str(self.path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.directory,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1
                ) as response:
                    if response.status == 200:
                        return self
            except urllib.error.HTTPError as error:
                # Serving, but a fail-closed dependency is down (a test that starts it so):
                # /readyz says "unavailable" rather than "starting".
                if error.code == 503 and b'"unavailable"' in error.read():
                    return self
                time.sleep(0.05)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway not ready in {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def raw_request(port: int, data: bytes, timeout: float = 5.0, read_all: bool = True) -> bytes:
    """Send raw bytes; return everything the server sends until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        sock.settimeout(timeout)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_all:
                    break
                sock.settimeout(0.5)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (last value wins, lower-case names) and body of the first response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, headers, body


def http_call(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request over a fresh connection: status, headers (lower-case names) and the
    problem document when the answer is ``application/problem+json`` (else empty)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, target, body=body or None, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    response_headers = {name.lower(): value for name, value in response.getheaders()}
    problem: dict[str, Any] = {}
    if response_headers.get("content-type") == "application/problem+json":
        problem = json.loads(payload)
    return response.status, response_headers, problem


def log_events(gateway: GatewayProcess, name: str) -> list[dict[str, Any]]:
    """The gateway's JSON log lines whose ``event`` is ``name``, in order."""
    found = []
    for line in gateway.logs().splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
