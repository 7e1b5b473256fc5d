"""Regressions for attacks on the HTTP server layer, each sent through a real gateway.

Overload and memory attacks use the attackers' mechanism with smaller numbers (fewer
connections, smaller budgets set in the configuration), so they run in seconds. Connections
come from other loopback addresses (127.0.0.0/8) where a test needs several clients.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from tests.e2e.test_ratelimit_gateway import call, config_with
from tests.support.gateway import GatewayProcess, parse_response, raw_request
from tests.support.upstream import RecordingUpstream

LOGIN_GUARD = {"ip": {"limit": 100_000, "per_s": 60}, "account": {"limit": 100_000, "per_s": 60}}


def two_routes(recording: RecordingUpstream, **top: Any) -> dict[str, Any]:
    """A login route that reads its body whole (login guard), and everything else."""
    config = config_with(recording, {"match": {"path_prefix": "/"}}, **top)
    config["routes"].insert(
        0,
        {
            "name": "login",
            "match": {"path": "/api/v1/login", "methods": ["POST"]},
            "upstream": "echo",
            "login_guard": LOGIN_GUARD,
        },
    )
    return config


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def answer(sock: socket.socket, wait: float) -> bytes:
    """What the gateway has sent on ``sock`` within ``wait`` seconds (until it closes)."""
    sock.settimeout(wait)
    data = b""
    with suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and len(data) >= _framed_length(data):
                break
    return data


def _framed_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    found = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    return len(head) + 4 + (int(found.group(1)) if found else 0)


def reason_of(raw: bytes) -> tuple[int, str]:
    status, headers, body = parse_response(raw)
    assert headers["content-type"] == "application/problem+json", raw[:300]
    return status, json.loads(body)["reason"]


def metric(gateway: GatewayProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def rss_bytes(gateway: GatewayProcess) -> int:
    assert gateway.process is not None
    status = open(f"/proc/{gateway.process.pid}/status").read()  # noqa: SIM115
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * 1024


def login_head(length: int) -> bytes:
    return (
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


@contextmanager
def stalled_uploads(
    port: int, sources: list[str], head: bytes, sent: bytes
) -> Iterator[list[socket.socket]]:
    """One connection per entry of ``sources``: ``head``, then ``sent`` of the body, then
    nothing more."""
    sockets = []
    try:
        for source in sources:
            sock = connect(port, source)
            sock.sendall(head + sent)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


# ---- overload without credentials --------------------------------------------------------


def test_stalled_uploads_from_many_addresses_do_not_shed_ready_requests(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    # The attack: many addresses, several connections each, `POST /api/v1/login` announcing
    # 100 000 bytes, sending 20 KB and then nothing. Scaled: 10 addresses x 4 connections
    # against max_in_flight 20 (the stalled uploads used to take every in-flight slot).
    config = two_routes(recording, overload={"max_in_flight": 20})
    config["limits"] = {
        "max_uploads": 30,
        "max_uploads_per_ip": 3,
        "min_body_rate_bytes_s": 1024,
        "body_rate_grace_s": 2,
        "body_timeout_s": 60,
    }
    gateway = start_gateway(config)
    sources = [f"127.0.0.{10 + n // 4}" for n in range(40)]
    with stalled_uploads(gateway.port, sources, login_head(100_000), b" " * 20_000) as sockets:
        time.sleep(0.7)
        assert metric(gateway, "dijk_uploads_in_progress") == 30  # more than max_in_flight
        # Ready requests are served meanwhile: the uploads hold no in-flight slot.
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = Counter(
                status for status, _, _ in pool.map(lambda _: call(gateway.port), range(30))
            )
        assert statuses == Counter({200: 30}), statuses
        # Each stalled upload is answered: over the per-address cap (429), or - once 20 KB
        # stop buying time, 2 s after the stall - too slow (408).
        started = time.monotonic()
        reasons = Counter(reason_of(answer(sock, 6)) for sock in sockets)
        elapsed = time.monotonic() - started
    assert reasons == Counter(
        {
            (429, "limits.too_many_uploads"): 10,
            (408, "http.body_too_slow"): 30,
        }
    ), reasons
    assert elapsed < 5  # not the 20 s that the early 20 KB used to buy
    assert all(received.target == "/r" for received in recording.requests)
    assert metric(gateway, "dijk_uploads_in_progress") == 0
    assert (
        call(gateway.port, "/api/v1/login", "POST", {"Content-Type": "application/json"}, b"{}")[0]
        == 200
    )


def test_an_upload_refused_for_the_upload_caps_reaches_nothing_upstream(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(recording, {"match": {"path_prefix": "/"}})  # a streaming route
    config["limits"] = {"max_uploads": 1, "body_rate_grace_s": 5}
    gateway = start_gateway(config)
    head = b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with stalled_uploads(gateway.port, ["127.0.0.1"], head, b"a" * 10):
        time.sleep(0.5)
        raw = raw_request(
            gateway.port, b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nb"
        )
        assert reason_of(raw) == (503, "overload.too_many_uploads")
        assert parse_response(raw)[1]["retry-after"] == "1"
    assert all(received.target != "/second" for received in recording.requests)


# ---- pipelining without reading ------------------------------------------------------------


def test_a_client_that_pipelines_and_never_reads_stops_the_gateway_producing(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    gateway = start_gateway(config_with(recording, {"match": {"path_prefix": "/"}}))
    # Answers of about 8 KB each (the upstream echoes the request headers), 3000 of them
    # pipelined on one connection whose client reads nothing.
    request = b"GET /r HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 8000 + b"\r\n\r\n"
    count = 3000
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    sock.connect(("127.0.0.1", gateway.port))
    sock.setblocking(False)
    payload = request * count
    sent = 0
    deadline = time.monotonic() + 3
    with sock:
        while sent < len(payload) and time.monotonic() < deadline:
            try:
                sent += sock.send(payload[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(0.5)
        answered = len(recording.requests)
        # Without back-pressure every request was answered into the gateway's memory
        # (3000 x 8 KB); now the gateway stops once the client's socket buffers are full
        # and max_pipelined_requests (16) wait parsed, and it stops reading too.
        assert answered < count // 3, answered
        assert sent < len(payload)
        # The client reads again: every complete request it sent is answered, in order.
        complete = sent // len(request)
        assert complete > answered  # requests were waiting, unread or unanswered
        sock.setblocking(True)
        sock.settimeout(10)
        received = b""
        while received.count(b"HTTP/1.1 200") < complete:
            chunk = sock.recv(1 << 20)
            assert chunk, received.count(b"HTTP/1.1 200")
            received += chunk
    assert received.count(b"HTTP/1.1 ") == complete
    assert [r.target for r in recording.requests] == ["/r"] * complete


def test_pipelined_bodies_full_of_blank_lines_are_parsed_whole_and_in_order(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    # The pipelining cap cuts reads at CRLF CRLF: bodies made of them must still arrive
    # whole, and a large one in one piece.
    blank = b"\r\n\r\n" * 10
    one = b"POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
    pipeline = b"".join(one % (n, len(blank), blank) for n in range(40))
    raw = raw_request(gateway.port, pipeline)
    assert raw.count(b"HTTP/1.1 200") == 40
    assert [r.target for r in recording.requests] == [f"/p{n}" for n in range(40)]
    assert all(r.body == blank for r in recording.requests)
    recording.reset()
    large = b"\r\n\r\n" * 250_000  # 1 MB
    status, _, body = call(gateway.port, "/large", "POST", {}, large)
    assert status == 200
    assert json.loads(body)["body_length"] == len(large)


# ---- memory held by stalled large bodies ---------------------------------------------------


def test_stalled_large_bodies_are_bounded_by_the_body_memory_budget(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    # The attack: many connections each send 999 999 bytes of a 1 000 000-byte body that is
    # read whole, then stall. Scaled: 40 connections against a budget of 4 MiB.
    budget = 4 * 1024 * 1024
    config = two_routes(recording)
    config["limits"] = {"max_buffered_body_bytes": budget, "body_rate_grace_s": 3}
    gateway = start_gateway(config)
    before = rss_bytes(gateway)
    sources = [f"127.0.0.{20 + n}" for n in range(40)]
    with stalled_uploads(gateway.port, sources, login_head(1_000_000), b" " * 999_999) as sockets:
        time.sleep(1)
        held = metric(gateway, "dijk_request_body_buffered_bytes")
        grown = rss_bytes(gateway) - before
        assert held <= budget
        assert grown < 20 * 1024 * 1024, grown  # not 40 MB of bodies
        reasons = Counter(reason_of(answer(sock, 8)) for sock in sockets)
    refused = reasons[(503, "overload.body_memory")]
    assert refused >= 40 - budget // 999_999, reasons
    assert refused + reasons[(408, "http.body_too_slow")] == 40, reasons
    assert recording.requests == []
    assert metric(gateway, "dijk_request_body_buffered_bytes") == 0


@contextmanager
def upstream_that_never_reads() -> Iterator[int]:
    """A TCP server that accepts connections and reads nothing from them."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for sock in held:
            sock.close()
        server.close()


def test_a_body_streamed_to_an_upstream_that_does_not_read_is_not_piled_up_in_the_gateway(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    size = 200 * 1024 * 1024
    with upstream_that_never_reads() as port:
        config = config_with(recording, {"match": {"path_prefix": "/"}})
        config["upstreams"]["echo"]["url"] = f"http://127.0.0.1:{port}"
        config["limits"] = {"max_body_bytes": size, "max_buffered_body_bytes": size}
        gateway = start_gateway(config)
        before = rss_bytes(gateway)
        sock = connect(gateway.port)
        sock.setblocking(False)
        with sock:
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
            sock.setblocking(True)
            sock.sendall(head)
            sock.setblocking(False)
            block = b"u" * 1_048_576
            sent, deadline = 0, time.monotonic() + 3
            while sent < size and time.monotonic() < deadline:
                try:
                    sent += sock.send(block)
                except BlockingIOError:
                    time.sleep(0.02)
            grown = rss_bytes(gateway) - before
    # Only what the sockets' kernel buffers hold left the client; the gateway kept no more
    # than its buffers (without back-pressure it took all 200 MB into the upstream's buffer).
    assert sent < 64 * 1024 * 1024, sent
    assert grown < 32 * 1024 * 1024, grown


# ---- low: framing and request line ---------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    """One gateway for the refusals below (each test resets what the upstream recorded)."""
    process = GatewayProcess(
        config_with(upstream, {"match": {"path_prefix": "/"}}), tmp_path_factory.mktemp("gw")
    )
    process.start()
    yield process
    process.stop()


def test_a_huge_chunk_extension_is_refused_like_oversized_headers(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    sock = connect(gateway.port)
    with sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=")
        with suppress(OSError):
            for _ in range(20):  # up to 20 MB, as in the attack; refused long before
                sock.sendall(b"a" * 1_000_000)
        raw = answer(sock, 5)
    assert reason_of(raw) == (400, "limits.chunk_extensions_too_large")
    assert recording.requests == []


def test_short_chunk_extensions_are_still_accepted(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'2;name=value;quoted="a b"\r\n{}\r\n0\r\n\r\n',
    )
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].body == b"{}"


def test_chunked_trailers_are_refused_cleanly(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Foo: b\r\n\r\n",
    )
    assert reason_of(raw) == (400, "http.trailers_unsupported")
    assert recording.requests == []
    time.sleep(0.2)
    assert "parser_callback_failed" not in gateway.logs()
    assert "AssertionError" not in gateway.logs()


INVALID_HOSTS = {
    "space": b"a b",
    "path": b"x/../y",
    "encoded_crlf": b"a%0d%0aX-Injected:%20yes",
    "very_long": b"h" * 8000,
    "comma": b"a.example,evil.example",
    "userinfo": b"user@evil.example",
    "bad_port": b"a.example:99999",
    "not_ipv6": b"[not:an:address]",
}


@pytest.mark.parametrize("name", sorted(INVALID_HOSTS))
def test_an_invalid_host_is_refused_with_400_and_never_forwarded(
    name: str, gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port, b"GET /x HTTP/1.1\r\nHost: " + INVALID_HOSTS[name] + b"\r\n\r\n"
    )
    assert reason_of(raw) == (400, "http.invalid_host")
    assert recording.requests == []


@pytest.mark.parametrize("host", ["api.example", "api.example:8443", "127.0.0.1:80", "[::1]:8080"])
def test_a_valid_host_is_forwarded_as_x_forwarded_host(
    host: str, gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(gateway.port, b"GET /x HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    assert parse_response(raw)[0] == 200
    assert recording.requests[0].header("x-forwarded-host") == host


@pytest.mark.parametrize(
    "request_line",
    [b"GET /path HTTP/2.0\r\n\r\n", b"GET /path\r\n\r\n", b"GET /path HTTP/0.9\r\nHost: x\r\n\r\n"],
    ids=["http2_without_host", "http09_request_line", "http09_with_host"],
)
def test_request_lines_of_other_http_versions_are_refused(
    request_line: bytes, gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(gateway.port, request_line)
    assert reason_of(raw) == (505, "http.version_not_supported")
    assert recording.requests == []


@pytest.mark.parametrize(
    "codings",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: identity, chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ],
    ids=["gzip_chunked", "identity_chunked", "gzip_then_chunked_lines"],
)
def test_a_transfer_coding_other_than_chunked_is_refused_with_501(
    codings: bytes, gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    raw = raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: x\r\n" + codings + b"\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert reason_of(raw) == (501, "http.transfer_encoding_unsupported")
    assert recording.requests == []


@pytest.mark.parametrize(
    ("length", "sent"),
    [(100_000, 20_000), (10, 0)],
    ids=["burst_then_stall", "body_never_starts"],
)
def test_a_stalled_body_is_cut_off_one_grace_after_its_last_byte(
    length: int,
    sent: int,
    start_gateway: Callable[..., GatewayProcess],
    recording: RecordingUpstream,
) -> None:
    # 20 KB at once used to buy 20 s of silence at 1 KiB/s (only the average rate was
    # checked, from the handler's first read); credit is now capped at the grace and runs
    # from the head: either stall is cut off after about a second.
    config = config_with(recording, {"match": {"path_prefix": "/"}})
    config["limits"] = {"min_body_rate_bytes_s": 1024, "body_rate_grace_s": 1}
    gateway = start_gateway(config)
    with connect(gateway.port) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
        sock.sendall(b"b" * sent)
        started = time.monotonic()
        raw = answer(sock, 8)
        elapsed = time.monotonic() - started
    assert reason_of(raw) == (408, "http.body_too_slow")
    assert elapsed < 4
