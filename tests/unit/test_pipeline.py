"""The pipeline: phase order by priority, denials as values, fail-closed faults, log phase.

The first part drives :class:`~dijk.pipeline.Pipeline` directly. The second part drives
the gateway's request handler (without sockets on the client side) so that "the log phase
always runs" and "a fault never reaches the upstream" are checked where they matter: in
the code that calls the pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import orjson
import pytest

from dijk import metrics
from dijk.config.models import DijkConfig
from dijk.pipeline import (
    Decision,
    DependencyUnavailable,
    OnError,
    Phase,
    Pipeline,
    RequestContext,
    Stage,
)
from dijk.proxy.gateway import Gateway
from dijk.proxy.http1 import Body, Request, ResponseWriter
from dijk.proxy.state import GatewayState, build_state
from tests.support.upstream import RecordingUpstream

ALL_PHASES = frozenset(Phase)
Call = tuple[str, str]


class Probe(Stage):
    """A stage that records its calls and returns (or raises) what it is told to."""

    name: ClassVar[str] = "probe"
    priority: ClassVar[int] = 0
    phases: ClassVar[frozenset[Phase]] = ALL_PHASES

    def __init__(
        self,
        calls: list[Call],
        *,
        results: dict[Phase, Decision | BaseException] | None = None,
        on_error: OnError = OnError.DENY,
        wants_body: bool = True,
    ) -> None:
        self.calls = calls
        self.results = results or {}
        self.on_error = on_error
        self.wants_body = wants_body
        self.seen: list[RequestContext] = []

    def wants_request_body(self, ctx: RequestContext) -> bool:
        return self.wants_body and super().wants_request_body(ctx)

    def wants_response_body(self, ctx: RequestContext) -> bool:
        return self.wants_body and super().wants_response_body(ctx)

    async def _step(self, phase: Phase, ctx: RequestContext) -> Decision | None:
        self.calls.append((self.name, phase.value))
        self.seen.append(ctx)
        result = self.results.get(phase)
        if isinstance(result, BaseException):
            raise result
        return result

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        return await self._step(Phase.REQUEST_HEADERS, ctx)

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        return await self._step(Phase.REQUEST_BODY, ctx)

    async def response_headers(self, ctx: RequestContext) -> Decision | None:
        return await self._step(Phase.RESPONSE_HEADERS, ctx)

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        return await self._step(Phase.RESPONSE_BODY, ctx)

    async def log(self, ctx: RequestContext) -> None:
        await self._step(Phase.LOG, ctx)


def probe(
    name: str,
    priority: int,
    calls: list[Call],
    phases: Iterable[Phase] = ALL_PHASES,
    **kwargs: Any,
) -> Probe:
    cls = type(
        f"Probe_{name}", (Probe,), {"name": name, "priority": priority, "phases": frozenset(phases)}
    )
    stage: Probe = cls(calls, **kwargs)
    return stage


def context(**overrides: Any) -> RequestContext:
    fields: dict[str, Any] = {
        "request_id": "rid-1",
        "method": "GET",
        "path": "/x",
        "query": "",
        "headers": [],
        "client_ip": "192.0.2.1",
        "client_port": 50000,
        "scheme": "http",
        "http_version": "1.1",
    }
    fields.update(overrides)
    return RequestContext(**fields)


def faults(stage: str) -> float:
    value = metrics.REGISTRY.get_sample_value("dijk_stage_faults_total", {"stage": stage})
    return value or 0.0


DENY = Decision.deny(403, "test.denied", "Denied by a test stage.")
MONITOR = Decision.monitor(403, "test.would_deny", "Would have been denied.")


# ---- ordering -----------------------------------------------------------------------------------


async def test_request_phases_run_by_descending_priority() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [probe("low", 10, calls), probe("high", 9000, calls), probe("mid", 5000, calls)]
    )
    ctx = context()
    assert await pipeline.request_headers(ctx) is None
    assert await pipeline.request_body(ctx) is None
    assert calls == [
        ("high", "request_headers"),
        ("mid", "request_headers"),
        ("low", "request_headers"),
        ("high", "request_body"),
        ("mid", "request_body"),
        ("low", "request_body"),
    ]


async def test_response_phases_run_in_reverse() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [probe("low", 10, calls), probe("high", 9000, calls), probe("mid", 5000, calls)]
    )
    ctx = context()
    assert await pipeline.response_headers(ctx) is None
    assert await pipeline.response_body(ctx) is None
    assert calls == [
        ("low", "response_headers"),
        ("mid", "response_headers"),
        ("high", "response_headers"),
        ("low", "response_body"),
        ("mid", "response_body"),
        ("high", "response_body"),
    ]


async def test_log_phase_runs_by_descending_priority() -> None:
    calls: list[Call] = []
    pipeline = Pipeline([probe("audit", 0, calls), probe("limits", 9000, calls)])
    await pipeline.log(context())
    assert calls == [("limits", "log"), ("audit", "log")]


async def test_equal_priorities_are_ordered_by_name_not_by_list_position() -> None:
    for names in (["b", "a", "c"], ["c", "b", "a"]):
        calls: list[Call] = []
        pipeline = Pipeline([probe(name, 100, calls) for name in names])
        await pipeline.request_headers(context())
        assert [name for name, _ in calls] == ["a", "b", "c"]


async def test_stages_are_called_only_in_the_phases_they_join() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [
            probe("headers-only", 100, calls, phases={Phase.REQUEST_HEADERS}),
            probe("response-only", 50, calls, phases={Phase.RESPONSE_HEADERS}),
        ]
    )
    ctx = context()
    for run in (
        pipeline.request_headers,
        pipeline.request_body,
        pipeline.response_headers,
        pipeline.response_body,
    ):
        await run(ctx)
    await pipeline.log(ctx)
    assert calls == [("headers-only", "request_headers"), ("response-only", "response_headers")]
    assert pipeline.stages_for(Phase.LOG) == ()


async def test_body_phases_skip_stages_that_do_not_want_the_body() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [probe("reader", 100, calls), probe("skipper", 50, calls, wants_body=False)]
    )
    ctx = context()
    assert pipeline.wants_request_body(ctx)
    assert pipeline.wants_response_body(ctx)
    await pipeline.request_body(ctx)
    await pipeline.response_body(ctx)
    assert calls == [("reader", "request_body"), ("reader", "response_body")]


async def test_no_stage_wanting_a_body_means_bodies_stream() -> None:
    pipeline = Pipeline([probe("skipper", 50, [], wants_body=False)])
    assert not pipeline.wants_request_body(context())
    assert not pipeline.wants_response_body(context())


def test_duplicate_stage_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Pipeline([probe("same", 1, []), probe("same", 2, [])])


# ---- decisions ----------------------------------------------------------------------------------


async def test_a_denial_stops_the_phase_and_is_returned() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [
            probe("first", 300, calls),
            probe("denier", 200, calls, results={Phase.REQUEST_HEADERS: DENY}),
            probe("never", 100, calls),
        ]
    )
    ctx = context()
    assert await pipeline.request_headers(ctx) is DENY
    assert calls == [("first", "request_headers"), ("denier", "request_headers")]
    assert ctx.monitored == []


async def test_a_denial_in_a_response_phase_stops_the_reverse_chain() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [
            probe("outer", 300, calls),
            probe("denier", 200, calls, results={Phase.RESPONSE_BODY: DENY}),
            probe("inner", 100, calls),
        ]
    )
    assert await pipeline.response_body(context()) is DENY
    assert calls == [("inner", "response_body"), ("denier", "response_body")]


async def test_monitor_decisions_are_recorded_but_do_not_deny() -> None:
    calls: list[Call] = []
    other = Decision.monitor(429, "test.would_limit", "Would have been limited.")
    pipeline = Pipeline(
        [
            probe("watcher", 300, calls, results={Phase.REQUEST_HEADERS: MONITOR}),
            probe("limiter", 200, calls, results={Phase.REQUEST_HEADERS: other}),
            probe("after", 100, calls),
        ]
    )
    ctx = context()
    assert await pipeline.request_headers(ctx) is None
    assert [name for name, _ in calls] == ["watcher", "limiter", "after"]
    assert ctx.monitored == [MONITOR, other]
    assert ctx.decision is None
    assert ctx.reason == "test.would_deny"  # recorded for metrics and the audit log


async def test_monitor_then_deny_keeps_both() -> None:
    pipeline = Pipeline(
        [
            probe("watcher", 300, [], results={Phase.REQUEST_HEADERS: MONITOR}),
            probe("denier", 200, [], results={Phase.REQUEST_HEADERS: DENY}),
        ]
    )
    ctx = context()
    assert await pipeline.request_headers(ctx) is DENY
    assert ctx.monitored == [MONITOR]


# ---- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phase",
    [Phase.REQUEST_HEADERS, Phase.REQUEST_BODY, Phase.RESPONSE_HEADERS, Phase.RESPONSE_BODY],
)
async def test_a_stage_fault_fails_closed_with_500(phase: Phase) -> None:
    calls: list[Call] = []
    name = f"broken-{phase.value}"
    pipeline = Pipeline(
        [
            probe("first", 300, calls),
            probe(name, 200, calls, results={phase: RuntimeError("secret detail /etc/passwd")}),
            probe("last", 100, calls),
        ]
    )
    ctx = context()
    before = faults(name)
    decision = await getattr(pipeline, phase.value)(ctx)
    assert decision is not None
    assert decision.denies
    assert (decision.status, decision.reason) == (500, "gateway.stage_fault")
    assert "secret" not in decision.detail  # the exception text never reaches the client
    assert "passwd" not in decision.detail
    assert ctx.fault == f"{name}:RuntimeError"
    expected_next = "first" if phase.value.startswith("response") else "last"
    assert (expected_next, phase.value) not in calls  # the chain stopped at the fault
    assert faults(name) == before + 1


async def test_a_fault_in_a_stage_configured_to_allow_lets_the_request_go_on_annotated() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [
            probe(
                "lenient",
                200,
                calls,
                results={Phase.REQUEST_HEADERS: ValueError("x")},
                on_error=OnError.ALLOW,
            ),
            probe("after", 100, calls),
        ]
    )
    ctx = context()
    before = faults("lenient")
    assert await pipeline.request_headers(ctx) is None
    assert calls == [("lenient", "request_headers"), ("after", "request_headers")]
    assert ctx.annotations["faults_allowed"] == ["lenient"]
    assert ctx.fault is None
    assert faults("lenient") == before + 1  # allowed faults are still counted


async def test_dependency_unavailable_gets_503_with_its_reason() -> None:
    outage = DependencyUnavailable("storage.unavailable", "The rate limit store is unreachable.")
    pipeline = Pipeline([probe("ratelimit", 5000, [], results={Phase.REQUEST_HEADERS: outage})])
    ctx = context()
    decision = await pipeline.request_headers(ctx)
    assert decision is not None
    assert (decision.status, decision.reason) == (503, "storage.unavailable")
    assert decision.detail == "The rate limit store is unreachable."
    assert dict(decision.headers).get("Retry-After")
    assert ctx.fault == "ratelimit:DependencyUnavailable"


async def test_dependency_unavailable_in_a_stage_configured_to_allow_goes_on() -> None:
    outage = DependencyUnavailable("storage.unavailable", "down")
    pipeline = Pipeline(
        [
            probe(
                "ratelimit",
                5000,
                [],
                results={Phase.REQUEST_HEADERS: outage},
                on_error=OnError.ALLOW,
            )
        ]
    )
    ctx = context()
    assert await pipeline.request_headers(ctx) is None
    assert ctx.annotations["faults_allowed"] == ["ratelimit"]


async def test_cancellation_is_not_swallowed_as_a_fault() -> None:
    pipeline = Pipeline(
        [probe("slow", 1, [], results={Phase.REQUEST_HEADERS: asyncio.CancelledError()})]
    )
    with pytest.raises(asyncio.CancelledError):
        await pipeline.request_headers(context())


async def test_a_fault_in_the_log_phase_is_counted_and_the_other_log_stages_still_run() -> None:
    calls: list[Call] = []
    pipeline = Pipeline(
        [
            probe("first", 300, calls),
            probe("broken-log", 200, calls, results={Phase.LOG: RuntimeError("disk full")}),
            probe("audit", 0, calls),
        ]
    )
    before = faults("broken-log")
    await pipeline.log(context())  # never raises
    assert calls == [("first", "log"), ("broken-log", "log"), ("audit", "log")]
    assert faults("broken-log") == before + 1


# ---- through the gateway's handler --------------------------------------------------------------


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
        self.data += b"HTTP/1.1 100 Continue\r\n\r\n"

    def response(self) -> tuple[int, dict[str, str], bytes]:
        head, _, body = bytes(self.data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split(" ")[1]), headers, body


def gateway_for(upstream_port: int, stages: list[Stage]) -> tuple[Gateway, GatewayState]:
    config = DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {
                "echo": {"url": f"http://127.0.0.1:{upstream_port}", "read_timeout_s": 5}
            },
            "routes": [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "echo"}],
        }
    )
    state = build_state(config, 1)
    plan = state.router.routes[0].plan
    plan.pipeline = Pipeline([*plan.pipeline.stages, *stages])
    return Gateway(state), state


async def handle(
    gateway: Gateway, method: str = "GET", path: str = "/thing", body: bytes = b""
) -> FakeConnection:
    connection = FakeConnection()
    request_body = Body(connection, False, time.monotonic() + 5)  # type: ignore[arg-type]
    if body:
        request_body.feed(body)
    request_body.finish()
    headers = [("host", "gw.test")]
    if body:
        headers.append(("content-length", str(len(body))))
    request = Request(
        method=method,
        target=path,
        path=path,
        query="",
        headers=headers,
        http_version="1.1",
        keep_alive=True,
        content_length=len(body) if body else None,
        chunked=False,
        client_ip="127.0.0.1",
        client_port=50000,
        scheme="http",
        body=request_body,
        received_at=time.perf_counter(),
    )
    writer = ResponseWriter(connection, request)  # type: ignore[arg-type]
    await gateway.handle(request, writer)
    return connection


def logged(stage: Probe) -> RequestContext:
    assert [phase for _, phase in stage.calls if _ == stage.name].count("log") == 1
    return stage.seen[-1]


async def test_log_phase_runs_after_a_forwarded_request(recording: RecordingUpstream) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    gateway, state = gateway_for(recording.port, [audit])
    try:
        connection = await handle(gateway, "POST", "/thing", b'{"a": 1}')
    finally:
        await state.close()
    status, _, body = connection.response()
    assert status == 200
    assert orjson.loads(body)["body_length"] == 8
    assert [phase for _, phase in calls] == [
        "request_headers",
        "request_body",
        "response_headers",
        "response_body",
        "log",
    ]
    ctx = logged(audit)
    assert ctx.response_status == 200
    assert ctx.decision is None
    assert ctx.route_name == "all"


async def test_log_phase_runs_after_a_denial_and_nothing_is_forwarded(
    recording: RecordingUpstream,
) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    denier = probe("denier", 3000, calls, results={Phase.REQUEST_HEADERS: DENY})
    gateway, state = gateway_for(recording.port, [audit, denier])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    status, headers, body = connection.response()
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["type"] == "https://dijk.dev/problems/test.denied"
    assert calls == [("denier", "request_headers"), ("denier", "log"), ("audit", "log")]
    ctx = logged(audit)
    assert ctx.decision is DENY
    assert ctx.response_status == 403
    assert ctx.reason == "test.denied"
    assert recording.raw == b""


async def test_log_phase_runs_after_a_fault_and_nothing_is_forwarded(
    recording: RecordingUpstream,
) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    broken = probe("broken", 3000, calls, results={Phase.REQUEST_HEADERS: KeyError("boom")})
    gateway, state = gateway_for(recording.port, [audit, broken])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    status, _, body = connection.response()
    assert status == 500
    problem = orjson.loads(body)
    assert problem["type"] == "https://dijk.dev/problems/gateway.stage_fault"
    assert "boom" not in body.decode()
    ctx = logged(audit)
    assert ctx.response_status == 500
    assert ctx.fault == "broken:KeyError"
    assert ctx.reason == "gateway.stage_fault"
    assert recording.raw == b""


async def test_log_phase_runs_after_a_response_phase_fault(recording: RecordingUpstream) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    broken = probe("broken", 3000, calls, results={Phase.RESPONSE_HEADERS: RuntimeError("boom")})
    gateway, state = gateway_for(recording.port, [audit, broken])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    status, _, body = connection.response()
    assert status == 500  # the upstream's answer is not passed on past a faulty stage
    assert b'"method"' not in body
    assert logged(audit).response_status == 500
    assert len(recording.requests) == 1


async def test_allowed_fault_forwards_the_request_and_is_annotated(
    recording: RecordingUpstream,
) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    lenient = probe(
        "lenient",
        3000,
        calls,
        results={Phase.REQUEST_HEADERS: RuntimeError("x")},
        on_error=OnError.ALLOW,
    )
    gateway, state = gateway_for(recording.port, [audit, lenient])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    assert connection.response()[0] == 200
    assert len(recording.requests) == 1
    ctx = logged(audit)
    assert ctx.annotations["faults_allowed"] == ["lenient"]
    assert ctx.response_status == 200


async def test_dependency_unavailable_answers_503_and_is_logged(
    recording: RecordingUpstream,
) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    outage = DependencyUnavailable("storage.unavailable", "The shared store is unreachable.")
    ratelimit = probe("ratelimit", 5000, calls, results={Phase.REQUEST_HEADERS: outage})
    gateway, state = gateway_for(recording.port, [audit, ratelimit])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    status, headers, body = connection.response()
    assert status == 503
    assert headers.get("retry-after") == "5"
    assert orjson.loads(body)["type"] == "https://dijk.dev/problems/storage.unavailable"
    assert logged(audit).response_status == 503
    assert recording.raw == b""


async def test_monitor_decision_is_logged_but_the_request_is_forwarded(
    recording: RecordingUpstream,
) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    watcher = probe("watcher", 3000, calls, results={Phase.REQUEST_HEADERS: MONITOR})
    gateway, state = gateway_for(recording.port, [audit, watcher])
    try:
        connection = await handle(gateway)
    finally:
        await state.close()
    assert connection.response()[0] == 200
    assert len(recording.requests) == 1
    ctx = logged(audit)
    assert ctx.monitored == [MONITOR]
    assert ctx.decision is None
    assert ctx.reason == "test.would_deny"


async def test_log_phase_runs_when_no_route_matches(recording: RecordingUpstream) -> None:
    calls: list[Call] = []
    audit = probe("audit", 0, calls)
    config = DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {"echo": {"url": f"http://127.0.0.1:{recording.port}"}},
            "routes": [{"name": "only", "match": {"path": "/only"}, "upstream": "echo"}],
        }
    )
    state = build_state(config, 1)
    state.default_pipeline = Pipeline([audit])
    try:
        connection = await handle(Gateway(state), "GET", "/elsewhere")
    finally:
        await state.close()
    assert connection.response()[0] == 404
    ctx = logged(audit)
    assert ctx.reason == "route.not_found"
    assert ctx.response_status == 404
    assert recording.raw == b""
