"""Live audit sinks against real receivers on loopback sockets: syslog over UDP, TCP and
TLS (octet counting), Splunk HEC, Elasticsearch bulk and OTLP/HTTP JSON. What arrived is
parsed and checked; failures are real (closed ports, 503s, a receiver that never reads)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord, Finding
from dijk.audit.service import AuditService
from dijk.audit.settings import AuditSettings, SinkSettings
from dijk.audit.sinks import octet_frame

KEYS = AuditKeys.from_secret(b"sink-test-secret-0123456789abcdefghijkl")
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<time>\S+) (?P<host>\S+) dijk - audit "
    r"\[dijk@32473 (?P<sd>[^\]]*)\] (?P<msg>\{.*\})$"
)


def record(number: int, denied: bool = False) -> AuditRecord:
    return AuditRecord(
        time=dt.datetime.now(dt.UTC),
        request_id=f"req-{number}",
        method="GET",
        status=403 if denied else 200,
        decision="deny" if denied else "allow",
        route="accounts",
        path_template="/accounts/{id}",
        reason="waf.sqli" if denied else None,
        consumer="alice",
        client_ip=KEYS.pseudonym("203.0.113.9"),
        findings=(Finding("942100", "query:q"),) if denied else (),
        gateway_latency_us=1200,
        upstream_latency_us=None if denied else 800,
        bytes_in=10,
        bytes_out=200,
    )


@dataclass
class Log:
    service: AuditService

    async def write(self, count: int, start: int = 1) -> None:
        for number in range(start, start + count):
            await self.service.writer.append(record(number, denied=number % 3 == 0))
        await self.service.writer.flush()


@pytest.fixture
async def open_log(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    services: list[AuditService] = []

    async def start(*sinks: dict[str, Any]) -> Log:
        settings = AuditSettings(
            url=f"sqlite:///{tmp_path / f'audit{len(services)}.db'}",
            sinks=[SinkSettings.model_validate({"flush_interval_ms": 20, **s}) for s in sinks],
        )
        service = AuditService.create(settings, tmp_path, keys=KEYS)
        for shipper in service.shippers:
            shipper._retry_initial = 0.05  # keep the tests quick; the doubling is the same
        await service.start()
        services.append(service)
        return Log(service)

    yield start
    for service in services:
        await service.close()


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# ---- syslog receivers ---------------------------------------------------------------------------


class UdpReceiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.messages.append(data.decode())


@dataclass
class StreamReceiver:
    """Parses RFC 6587 octet-counted frames from every connection."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                if not length[:-1].isdigit():
                    self.errors.append(f"bad frame length {length!r}")
                    return
                self.messages.append((await reader.readexactly(int(length[:-1]))).decode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", port, ssl=tls)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def check_syslog(messages: list[str], count: int) -> None:
    assert len(messages) == count
    seen = []
    for message in messages:
        match = RFC5424.match(message)
        assert match, message
        assert int(match["pri"]) in (13 * 8 + 4, 13 * 8 + 6)  # facility log audit
        document = json.loads(match["msg"])
        assert document["ecs"]["version"]
        assert document["event"]["dataset"] == "dijk.audit"
        assert 'chain="default"' in match["sd"]
        seen.append(document["http"]["request"]["id"])
    assert sorted(seen) == sorted(f"req-{n}" for n in range(1, count + 1))


async def test_syslog_over_udp_sends_one_rfc5424_message_per_datagram(
    open_log: Callable[..., Any],
) -> None:
    receiver = UdpReceiver()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: receiver, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        log = await open_log({"type": "syslog", "url": f"udp://127.0.0.1:{port}"})
        await log.write(20)
        await until(lambda: len(receiver.messages) == 20)
    finally:
        transport.close()
    check_syslog(receiver.messages, 20)


async def test_syslog_over_tcp_uses_octet_counting_and_reconnects_after_a_receiver_restart(
    open_log: Callable[..., Any],
) -> None:
    receiver = StreamReceiver()
    port = await receiver.start()
    log = await open_log({"type": "syslog", "url": f"tcp://127.0.0.1:{port}"})
    await log.write(10)
    await until(lambda: len(receiver.messages) == 10)
    await receiver.stop()  # the SIEM restarts; records keep coming meanwhile
    await log.write(10, start=11)
    await asyncio.sleep(0.2)
    await receiver.start(port)
    await log.write(5, start=21)
    await until(lambda: len(receiver.messages) >= 25)
    assert not receiver.errors
    ids = [json.loads(RFC5424.match(m)["msg"])["http"]["request"]["id"] for m in receiver.messages]  # type: ignore[index]
    assert set(ids) == {f"req-{n}" for n in range(1, 26)}


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "siem.pem", directory / "siem.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_syslog_over_tls_verifies_the_receiver_and_frames_by_octet_count(
    open_log: Callable[..., Any], tmp_path: Path
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    receiver = StreamReceiver()
    port = await receiver.start(tls=context)
    try:
        log = await open_log(
            {"type": "syslog", "url": f"tls://127.0.0.1:{port}", "ca_file": str(cert_file)}
        )
        await log.write(15)
        await until(lambda: len(receiver.messages) == 15)
    finally:
        await receiver.stop()
    check_syslog(receiver.messages, 15)
    assert octet_frame(b"abc") == b"3 abc"


async def test_tls_syslog_refuses_a_receiver_it_cannot_verify(
    open_log: Callable[..., Any], tmp_path: Path
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    receiver = StreamReceiver()
    port = await receiver.start(tls=context)
    try:
        log = await open_log({"type": "syslog", "url": f"tls://127.0.0.1:{port}"})
        await log.write(3)
        shipper = log.service.shippers[0]
        await until(lambda: shipper.stats.failures >= 2)
        assert receiver.messages == []
    finally:
        await receiver.stop()


# ---- HTTP receivers -----------------------------------------------------------------------------


@dataclass
class HttpReceiver:
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    fail_next: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    async def handler(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        self.requests.append((request.path, dict(request.headers), body))
        if request.path == "/_bulk":
            return web.json_response(self.bulk_answer(body))
        if request.path == "/services/collector/event":
            return web.json_response({"text": "Success", "code": 0})
        return web.json_response({})

    def bulk_answer(self, body: bytes) -> dict[str, Any]:
        lines = body.decode().splitlines()
        seen = {
            json.loads(line)["create"]["_id"]
            for _, _, earlier in self.requests[:-1]
            for line in earlier.decode().splitlines()[::2]
        }
        items = []
        for action in lines[::2]:
            identifier = json.loads(action)["create"]["_id"]
            items.append(
                {"create": {"_id": identifier, "status": 409 if identifier in seen else 201}}
            )
        return {"errors": any(i["create"]["status"] != 201 for i in items), "items": items}

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_splunk_hec_gets_ecs_events_with_the_token(
    open_log: Callable[..., Any], http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEC_TOKEN", "hec-token-123")
    url = f"http://127.0.0.1:{http_receiver.port}/services/collector/event"
    log = await open_log(
        {"type": "splunk-hec", "url": url, "token_env": "HEC_TOKEN", "index": "security"}
    )
    await log.write(12)
    await until(
        lambda: sum(body.count(b'"sourcetype"') for *_, body in http_receiver.requests) == 12
    )
    _path, headers, _body = http_receiver.requests[0]
    assert headers["Authorization"] == "Splunk hec-token-123"
    events = [json.loads(line) for *_, b in http_receiver.requests for line in b.splitlines()]
    assert {event["sourcetype"] for event in events} == {"dijk:audit"}
    assert {event["index"] for event in events} == {"security"}
    denied = [e for e in events if e["event"]["event"]["action"] == "deny"]
    assert denied
    assert denied[0]["event"]["rule"]["id"] == ["942100"]
    assert all(e["event"]["url"]["path"] == "/accounts/{id}" for e in events)


async def test_elasticsearch_bulk_retries_after_503_without_indexing_twice(
    open_log: Callable[..., Any], http_receiver: HttpReceiver
) -> None:
    http_receiver.fail_next = 2
    log = await open_log(
        {"type": "elastic-bulk", "url": f"http://127.0.0.1:{http_receiver.port}/_bulk"}
    )
    await log.write(30)
    shipper = log.service.shippers[0]
    await until(lambda: shipper.stats.sent == 30)
    assert shipper.stats.failures == 2
    actions, documents = [], []
    for path, headers, body in http_receiver.requests:
        assert path == "/_bulk"
        assert headers["Content-Type"] == "application/x-ndjson"
        assert body.endswith(b"\n")
        lines = body.decode().splitlines()
        actions += [json.loads(line) for line in lines[::2]]
        documents += [json.loads(line) for line in lines[1::2]]
    assert {a["create"]["_index"] for a in actions} == {"logs-dijk.audit-default"}
    assert len({a["create"]["_id"] for a in actions}) == 30
    assert all("@timestamp" in d and d["ecs"]["version"] for d in documents)
    assert {d["dijk"]["audit"]["seq"] for d in documents} == set(range(1, 31))


async def test_otlp_logs_arrive_as_export_requests(
    open_log: Callable[..., Any], http_receiver: HttpReceiver
) -> None:
    log = await open_log({"type": "otlp", "url": f"http://127.0.0.1:{http_receiver.port}/v1/logs"})
    await log.write(8)
    shipper = log.service.shippers[0]
    await until(lambda: shipper.stats.sent == 8)
    records = []
    for path, headers, body in http_receiver.requests:
        assert path == "/v1/logs"
        assert headers["Content-Type"] == "application/json"
        request = json.loads(body)
        scope = request["resourceLogs"][0]["scopeLogs"][0]
        assert scope["scope"]["name"] == "dijk.audit"
        records += scope["logRecords"]
    assert len(records) == 8
    attributes = {a["key"]: a["value"] for a in records[0]["attributes"]}
    assert attributes["http.route"] == {"stringValue": "/accounts/{id}"}
    assert int(records[0]["timeUnixNano"]) > 0


async def test_a_sink_that_stays_down_drops_copies_beyond_its_bounded_queue(
    open_log: Callable[..., Any],
) -> None:
    log = await open_log(
        {"type": "otlp", "url": "http://127.0.0.1:9/v1/logs", "max_queue": 10, "batch_size": 5}
    )
    await log.write(100)
    shipper = log.service.shippers[0]
    await until(lambda: shipper.stats.failures >= 1)
    assert shipper.queued <= 10
    assert shipper.stats.dropped >= 100 - 10 - 5
    assert log.service.writer.stats.committed == 100  # the database has every record


async def test_a_receiver_that_never_reads_does_not_slow_the_writer(
    open_log: Callable[..., Any],
) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # never read, never answer

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        log = await open_log(
            {"type": "splunk-hec", "url": f"http://127.0.0.1:{port}/", "timeout_s": 30},
            {"type": "syslog", "url": f"tcp://127.0.0.1:{port}", "timeout_s": 30},
        )
        started = time.monotonic()
        await log.write(2000)
        elapsed = time.monotonic() - started
        assert log.service.writer.stats.committed == 2000
        assert elapsed < 5, elapsed
    finally:
        for writer in accepted:
            writer.close()
        server.close()


def test_sink_settings_reject_a_url_that_does_not_fit_the_type() -> None:
    from pydantic import ValidationError

    for bad, message in [
        ({"type": "syslog", "url": "http://x:514"}, "udp://"),
        ({"type": "syslog", "url": "tcp://host"}, "needs a port"),
        ({"type": "otlp", "url": "tcp://x:1"}, "http://"),
        ({"type": "otlp", "url": "http://x/v1/logs", "ca_file": "ca.pem"}, "ca_file"),
        ({"type": "elastic-bulk", "url": "http://x/_bulk", "token_env": "bad name"}, "variable"),
    ]:
        with pytest.raises(ValidationError, match=message):
            SinkSettings.model_validate(bad)
