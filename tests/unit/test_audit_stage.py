"""The audit log stage in the gateway's handler: record contents, exactly one record per
request, strict durability (no response before its commit) and ``on_sink_error: deny``.

In process, with a real upstream and a real SQLite audit database; the HTTP client side
is a fake connection that collects what the gateway writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dijk.audit.chain import verify_store
from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord
from dijk.audit.store import AuditQuery, AuditSinkError, open_store
from dijk.config.models import DijkConfig
from dijk.detect.findings import Finding as DetectorFinding
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.proxy.gateway import Gateway
from dijk.proxy.http1 import Body, ClientDisconnected, ProtocolFault, Request, ResponseWriter
from dijk.proxy.state import GatewayState, build_state
from dijk.routing.router import Router
from dijk.stages.audit import AUDIT_RECORDED, findings_of, path_template_of
from tests.support.upstream import RecordingUpstream

SECRET = "stage-test-secret-0123456789abcdefghij"
KEYS = AuditKeys.from_secret(SECRET.encode())


class FakeConnection:
    """Stands in for the client connection: collects what the gateway writes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writing_paused = False

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    async def drain(self) -> None:
        return None

    def add_resume_callback(self, callback: Any) -> None:
        callback()

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def send_continue(self) -> None:
        return None

    def complete(self) -> bool:
        """A whole response (head and Content-Length or chunked body) has arrived."""
        head, found, body = bytes(self.data).partition(b"\r\n\r\n")
        if not found:
            return False
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        if "content-length" in headers:
            return len(body) >= int(headers["content-length"])
        return body.endswith(b"0\r\n\r\n")

    def status(self) -> int:
        return int(bytes(self.data).split(b" ", 2)[1])


class Identify(Stage):
    """Plays an authentication stage: sets an identity and a detector finding."""

    name = "identify"
    priority = 6000
    phases = frozenset({Phase.REQUEST_HEADERS, Phase.RESPONSE_BODY})

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        ctx.identity = Identity("alice", "api_key", credential_id="key:0123456789abcdef")
        ctx.findings.append(
            DetectorFinding(
                rule_id="942100",
                category="sqli",
                severity=5,
                paranoia=1,
                location="query",
                field="q",
                transform="none",
                snippet="' OR 1=1 --",
            )
        )
        return None

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        ctx.annotations["pii_categories"] = ["email", "iban", "email"]
        return None


def config(tmp_path: Path, upstream_port: int, **audit: Any) -> DijkConfig:
    return DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {"echo": {"url": f"http://127.0.0.1:{upstream_port}"}},
            # The requests' peer stands for a proxy in front, whose X-Request-Id is kept.
            "trusted_proxies": ["203.0.113.7/32"],
            "audit": {"url": f"sqlite:///{tmp_path / 'audit.db'}", **audit},
            "routes": [
                {
                    "name": "account",
                    "match": {"path_template": "/accounts/{id}"},
                    "upstream": "echo",
                },
                {"name": "stream", "match": {"path_prefix": "/chunked"}, "upstream": "echo"},
                {"name": "rest", "match": {"path_prefix": "/api"}, "upstream": "echo"},
            ],
        }
    )


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIJK_AUDIT_KEY", SECRET)
    monkeypatch.delenv("DIJK_AUDIT_KEY_FILE", raising=False)


Started = Callable[..., Any]


@pytest.fixture
async def started(
    tmp_path: Path, recording: RecordingUpstream, key_env: None
) -> AsyncIterator[Started]:
    states: list[GatewayState] = []

    async def start(extra_stages: list[Stage] | None = None, **audit: Any) -> GatewayState:
        state = build_state(config(tmp_path, recording.port, **audit), 1)
        if extra_stages:
            for route in state.router.routes:
                plan = route.plan
                plan.pipeline = type(plan.pipeline)([*plan.pipeline.stages, *extra_stages])
        await state.start()
        states.append(state)
        return state

    yield start
    for state in states:
        await state.close()


async def handle(
    gateway: Gateway,
    path: str,
    method: str = "GET",
    request_id: str = "req-1",
    connection: FakeConnection | None = None,
) -> FakeConnection:
    connection = connection or FakeConnection()
    request_body = Body(connection, False, time.monotonic() + 5)  # type: ignore[arg-type]
    request_body.finish()
    request = Request(
        method=method,
        target=path,
        path=path.partition("?")[0],
        query=path.partition("?")[2],
        headers=[("host", "gw.test"), ("x-request-id", request_id)],
        http_version="1.1",
        keep_alive=True,
        content_length=None,
        chunked=False,
        client_ip="203.0.113.7",
        client_port=50000,
        scheme="http",
        body=request_body,
        received_at=time.perf_counter(),
    )
    writer = ResponseWriter(connection, request)  # type: ignore[arg-type]
    await gateway.handle(request, writer)
    return connection


async def records(state: GatewayState) -> list[AuditRecord]:
    audit = state.resources.audit
    assert audit is not None
    assert audit.service is not None
    await audit.service.writer.flush()
    page = await audit.service.writer.store.query(AuditQuery(limit=1000))
    return [row.record for row in page.records]


async def test_a_forwarded_request_is_recorded_with_identity_template_and_no_raw_data(
    started: Started,
) -> None:
    state = await started([Identify()])
    connection = await handle(Gateway(state), "/accounts/NL91ABNA0417164300?q=x", request_id="r1")
    assert connection.status() == 200
    [record] = await records(state)
    assert (record.request_id, record.method, record.status) == ("r1", "GET", 200)
    assert (record.route, record.path_template) == ("account", "/accounts/{id}")
    assert record.decision == "allow"
    assert record.reason is None
    assert (record.consumer, record.auth_method) == ("alice", "api_key")
    assert record.credential_id == "key:0123456789abcdef"
    assert record.client_ip == KEYS.pseudonym("203.0.113.7")
    assert [(item.rule_id, item.field) for item in record.findings] == [("942100", "query:q")]
    assert record.pii_categories == ("email", "iban")
    assert record.upstream_latency_us is not None
    assert record.upstream_latency_us > 0
    assert record.gateway_latency_us >= record.upstream_latency_us
    assert record.bytes_out == len(connection.data.partition(b"\r\n\r\n")[2])
    assert abs(record.time.timestamp() - time.time()) < 5
    database = Path(state.config.audit.url.removeprefix("sqlite:///"))
    stored = await asyncio.to_thread(database.read_bytes)
    for raw in (b"NL91ABNA0417164300", b"203.0.113.7", b"OR 1=1"):
        assert raw not in stored


def test_path_templates_never_carry_the_raw_rest_of_a_prefix_route() -> None:
    router = Router(config(Path("/tmp"), 1).routes)
    for path, expected in [
        ("/api", "/api"),
        ("/api/users/jan@example.nl", "/api/*"),
        ("/accounts/7", "/accounts/{id}"),
    ]:
        match = router.match("GET", path)
        ctx = RequestContext("r", "GET", path, "", [], "", 0, "http", "1.1", route=match.route)
        assert path_template_of(ctx) == expected


def test_findings_keep_rule_and_field_only() -> None:
    found = findings_of(
        [
            {"rule_id": "941100", "field": "$.name", "location": "json", "snippet": "<script>"},
            {"field": "no rule id"},
        ]
    )
    assert [(item.rule_id, item.field) for item in found] == [("941100", "$.name")]


async def test_denied_unrouted_and_crashed_requests_each_get_exactly_one_record(
    started: Started, recording: RecordingUpstream
) -> None:
    class Deny(Stage):
        name = "deny"
        priority = 3000
        phases = frozenset({Phase.REQUEST_HEADERS})

        async def request_headers(self, ctx: RequestContext) -> Decision | None:
            if ctx.path.endswith("/blocked"):
                return Decision.deny(403, "waf.sqli", "Blocked.")
            if ctx.path.endswith("/watched"):
                return Decision.monitor(403, "waf.xss", "Would block.")
            return None

    state = await started([Deny()])
    gateway = Gateway(state)
    await handle(gateway, "/api/blocked", request_id="denied")
    await handle(gateway, "/api/watched", request_id="monitored")
    await handle(gateway, "/nowhere", request_id="unrouted")
    gateway.protocol_error(ProtocolFault(400, "http.malformed", "Bad."), None, "198.51.100.1")
    found = {record.request_id: record for record in await records(state)}
    assert len(found) == 4
    assert (found["denied"].decision, found["denied"].status) == ("deny", 403)
    assert found["denied"].reason == "waf.sqli"
    assert (found["monitored"].decision, found["monitored"].reason) == ("monitor", "waf.xss")
    assert found["monitored"].status == 200
    assert (found["unrouted"].status, found["unrouted"].reason) == (404, "route.not_found")
    assert found["unrouted"].route is None
    [refused] = [record for record in found.values() if record.method == "-"]
    assert (refused.status, refused.reason, refused.decision) == (400, "http.malformed", "deny")
    assert refused.client_ip == KEYS.pseudonym("198.51.100.1")
    assert b"/api/blocked" not in recording.raw


class SlowCommits:
    """Wraps the writer's append: notes what the client had received when the commit
    started, and makes the commit take a while."""

    def __init__(self, state: GatewayState, connection: FakeConnection) -> None:
        audit = state.resources.audit
        assert audit is not None
        assert audit.service is not None
        self.writer = audit.service.writer
        self.original = self.writer.append
        self.connection = connection
        self.seen: list[bool] = []
        self.writer.append = self.append  # type: ignore[method-assign]

    async def append(self, record: AuditRecord, if_refused: AuditRecord | None = None) -> None:
        self.seen.append(self.connection.complete())
        await asyncio.sleep(0.05)
        await self.original(record, if_refused=if_refused)


@pytest.mark.parametrize(
    "path",
    ["/api/thing", "/chunked?n=3", "/nowhere", "/api/status/204"],
    ids=["buffered-or-streamed", "chunked", "problem", "no-body"],
)
async def test_strict_mode_releases_no_complete_response_before_its_commit(
    started: Started, path: str
) -> None:
    state = await started(durability="strict")
    connection = FakeConnection()
    slow = SlowCommits(state, connection)
    await handle(Gateway(state), path, connection=connection)
    assert slow.seen == [False], "the response was complete before its record was committed"
    assert connection.complete()
    assert len(await records(state)) == 1


async def store_back(writer: Any) -> None:
    """The store answers again: have the writer retry now, wait until it has replayed."""
    writer._next_retry = 0  # retry now rather than after the backoff
    writer._wake.set()
    for _ in range(200):
        if writer.sink_available:
            break
        await asyncio.sleep(0.02)
    assert writer.sink_available


async def test_deny_mode_answers_503_and_forwards_nothing_while_the_store_is_down(
    started: Started, recording: RecordingUpstream
) -> None:
    state = await started(durability="strict", on_sink_error="deny")
    audit = state.resources.audit
    assert audit is not None
    assert audit.service is not None
    writer = audit.service.writer

    async def broken(*_: Any, **__: Any) -> None:
        raise AuditSinkError("database is gone")

    original = writer.store.append
    writer.store.append = broken  # type: ignore[method-assign]
    gateway = Gateway(state)
    # Its commit failed before any byte of the upstream's answer went out (the head is
    # corked): the answer is withdrawn and the client gets a clean 503 instead.
    first = await handle(gateway, "/api/a", request_id="during-outage-1")
    assert first.status() == 503
    second = await handle(gateway, "/api/b", request_id="during-outage-2")
    assert second.status() == 503
    problem = orjson.loads(bytes(second.data).partition(b"\r\n\r\n")[2])
    assert problem["type"] == "https://dijk.dev/problems/audit.unavailable"
    assert b"/api/b" not in recording.raw  # refused before forwarding
    assert not writer.sink_available
    writer.store.append = original  # type: ignore[method-assign]
    await store_back(writer)
    third = await handle(gateway, "/api/c", request_id="after-outage")
    assert third.status() == 200
    ids = [record.request_id for record in await records(state)]
    assert ids.count("during-outage-2") == 1
    assert ids.count("after-outage") == 1
    async with open_store(state.config.audit.url) as store:
        assert (await verify_store(store, KEYS)).intact


async def test_the_log_phase_does_not_record_twice_after_the_strict_commit(
    started: Started,
) -> None:
    state = await started(durability="strict")
    seen: list[RequestContext] = []

    class Spy(Stage):
        name = "spy"
        priority = -1
        phases = frozenset({Phase.LOG})

        async def log(self, ctx: RequestContext) -> None:
            seen.append(ctx)

    for route in state.router.routes:
        plan = route.plan
        plan.pipeline = type(plan.pipeline)([*plan.pipeline.stages, Spy()])
    await handle(Gateway(state), "/api/x")
    assert seen[0].annotations[AUDIT_RECORDED] is True
    assert len(await records(state)) == 1


async def test_a_state_that_was_never_started_counts_a_fault_instead_of_pretending(
    tmp_path: Path, recording: RecordingUpstream, key_env: None
) -> None:
    state = build_state(config(tmp_path, recording.port), 1)
    try:
        connection = await handle(Gateway(state), "/api/x")
    finally:
        await state.close()
    assert connection.status() == 200
    assert not (tmp_path / "audit.db").exists()


async def test_a_response_refused_for_its_commit_is_recorded_as_the_client_got_it(
    started: Started,
) -> None:
    """strict + deny, the store fails during the request: a problem document and a
    response whose head is still corked become a 503, a response already streaming is
    cut; each record says what the client got (not 404 / 200 allow)."""
    state = await started(durability="strict", on_sink_error="deny")
    audit = state.resources.audit
    assert audit is not None
    assert audit.service is not None
    writer = audit.service.writer
    original = writer.store.append

    async def broken(*_: Any, **__: Any) -> None:
        raise AuditSinkError("database is gone")

    async def outage_then_recover(path: str, request_id: str) -> FakeConnection:
        writer.store.append = broken  # type: ignore[method-assign]
        connection = FakeConnection()
        with contextlib.suppress(ClientDisconnected):
            await handle(Gateway(state), path, request_id=request_id, connection=connection)
        writer.store.append = original  # type: ignore[method-assign]
        await store_back(writer)
        return connection

    def body_of(connection: FakeConnection) -> bytes:
        return bytes(connection.data).partition(b"\r\n\r\n")[2]

    unrouted = await outage_then_recover("/nowhere", "problem-refused")
    assert unrouted.status() == 503  # not the 404 whose record could not be committed
    corked = await outage_then_recover("/api/thing", "head-not-sent")
    assert corked.status() == 503  # nothing was on the wire yet: a clean refusal
    assert corked.complete()
    streamed = await outage_then_recover("/chunked?n=3", "stream-cut")
    assert streamed.status() == 200
    assert not streamed.complete()
    found = {record.request_id: record for record in await records(state)}
    for request_id, connection in (("problem-refused", unrouted), ("head-not-sent", corked)):
        record = found[request_id]
        assert (record.status, record.decision, record.reason) == (
            503,
            "deny",
            "audit.unavailable",
        )
        assert record.bytes_out == len(body_of(connection))
    cut = found["stream-cut"]
    assert (cut.status, cut.decision, cut.reason) == (200, "abort", "audit.unavailable")
    assert cut.bytes_out > 0
    async with open_store(state.config.audit.url) as store:
        assert (await verify_store(store, KEYS)).intact
