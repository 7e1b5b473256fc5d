"""Slow clients (slowloris, slow POST) and the per-IP connection cap, against a real gateway.

The slow connections come from 127.0.0.2 where a test needs them apart from the normal
client on 127.0.0.1 (all of 127.0.0.0/8 is this machine's loopback).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress

from tests.e2e.test_ratelimit_gateway import call, config_with
from tests.support.gateway import GatewayProcess, parse_response
from tests.support.upstream import RecordingUpstream


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


@contextmanager
def slowloris(port: int, count: int, source: str = "127.0.0.1") -> Iterator[list[socket.socket]]:
    """``count`` connections that send a request head one byte every 0.3 s, forever."""
    sockets = [connect(port, source) for _ in range(count)]
    for sock in sockets:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            for sock in sockets:
                with suppress(OSError):
                    sock.send(b"a")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(5)
        for sock in sockets:
            sock.close()


def normal_requests(port: int, count: int) -> list[tuple[int, float]]:
    def one(_: int) -> tuple[int, float]:
        started = time.monotonic()
        status = call(port)[0]
        return status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def test_many_slowloris_connections_do_not_starve_normal_clients(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(recording, {"match": {"path_prefix": "/"}})
    config["limits"] = {"header_timeout_s": 3}
    gateway = start_gateway(config)
    with slowloris(gateway.port, 400) as sockets:
        time.sleep(0.5)
        results = normal_requests(gateway.port, 60)
        assert all(status == 200 for status, _ in results)
        assert max(seconds for _, seconds in results) < 1.0
        # The header deadline then ends every slow connection with a 408.
        time.sleep(3.5)
        answered = 0
        for sock in sockets[:50]:
            sock.settimeout(2)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
            if data.startswith(b"HTTP/1.1 408"):
                answered += 1
        assert answered == 50
    assert recording.requests
    assert all(r.target == "/r" for r in recording.requests)


def test_connections_over_the_per_ip_cap_are_refused_others_unaffected(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(recording, {"match": {"path_prefix": "/"}})
    config["limits"] = {"header_timeout_s": 5, "max_connections_per_ip": 20}
    gateway = start_gateway(config)
    sockets = [connect(gateway.port, "127.0.0.2") for _ in range(50)]
    try:
        refused = accepted = 0
        time.sleep(0.5)  # every refusal has been written by now
        for sock in sockets:
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                accepted += 1  # held open, waiting for a request
                continue
            status, headers, body = parse_response(data)
            assert status == 429
            assert headers["retry-after"] == "1"
            assert json.loads(body)["reason"] == "limits.too_many_connections"
            refused += 1
        assert (accepted, refused) == (20, 30)
        # Another address is not affected by 127.0.0.2's connections.
        assert all(status == 200 for status, _ in normal_requests(gateway.port, 20))
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.3)
    with connect(gateway.port, "127.0.0.2") as sock:
        sock.sendall(b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_slow_post_is_cut_off_by_the_minimum_body_rate(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(recording, {"match": {"path_prefix": "/"}})
    config["limits"] = {"body_timeout_s": 60, "min_body_rate_bytes_s": 200, "body_rate_grace_s": 1}
    gateway = start_gateway(config)
    with connect(gateway.port) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        started = time.monotonic()
        sock.settimeout(0.25)
        data = b""
        while time.monotonic() - started < 10 and not data:
            try:
                sock.send(b"x" * 10)  # 40 bytes/s: far under the minimum
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - started
    status, _, body = parse_response(data)
    assert status == 408
    assert json.loads(body)["reason"] == "http.body_too_slow"
    assert elapsed < 5


def test_a_fast_upload_is_not_affected_by_the_minimum_rate(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(recording, {"match": {"path_prefix": "/"}})
    config["limits"] = {"min_body_rate_bytes_s": 100_000, "body_rate_grace_s": 0.5}
    gateway = start_gateway(config)
    status, _, body = call(
        gateway.port, "/upload", "POST", {"Content-Type": "text/plain"}, b"y" * 500_000
    )
    assert status == 200
    assert json.loads(body)["body_length"] == 500_000
