"""Load shedding on event-loop lag and in-flight counts, in process."""

from __future__ import annotations

import asyncio
import time

from dijk.config.models import OverloadConfig
from dijk.pipeline.context import RequestContext
from dijk.stages.load_shed import LoadMonitor, LoadShedStage, body_arrived


def context() -> RequestContext:
    return RequestContext("id", "GET", "/", "", [], "127.0.0.1", 1, "http", "1.1")


async def test_event_loop_lag_sheds_until_the_loop_catches_up() -> None:
    monitor = LoadMonitor(asyncio.get_running_loop())
    stage = LoadShedStage(OverloadConfig(max_event_loop_lag_s=0.2), monitor)
    monitor.watch_lag()
    assert await stage.request_headers(context()) is None
    time.sleep(0.4)  # noqa: ASYNC251 - deliberately block the loop: its timer fires late
    await asyncio.sleep(0.01)
    assert monitor.lag_s >= 0.2
    decision = await stage.request_headers(context())
    assert decision is not None
    assert decision.status == 503
    assert decision.reason == "overload.shed"
    assert ("Retry-After", "2") in decision.headers
    await asyncio.sleep(0.25)  # later samples are on time again
    assert monitor.lag_s < 0.2
    assert await stage.request_headers(context()) is None


async def test_in_flight_count_is_given_back_in_the_log_phase() -> None:
    monitor = LoadMonitor(asyncio.get_running_loop())
    stage = LoadShedStage(OverloadConfig(max_in_flight=2), monitor)
    first, second, third = context(), context(), context()
    assert await stage.request_headers(first) is None
    assert await stage.request_headers(second) is None
    refused = await stage.request_headers(third)
    assert refused is not None
    assert refused.reason == "overload.shed"
    await stage.log(third)  # a shed request was never counted
    assert monitor.in_flight == 2
    await stage.log(first)
    assert monitor.in_flight == 1
    assert await stage.request_headers(context()) is None


def upload() -> RequestContext:
    ctx = RequestContext("id", "POST", "/", "", [], "127.0.0.2", 1, "http", "1.1")
    ctx.body_pending = True
    return ctx


async def test_an_upload_takes_no_in_flight_slot_until_its_body_has_arrived() -> None:
    monitor = LoadMonitor(asyncio.get_running_loop())
    stage = LoadShedStage(OverloadConfig(max_in_flight=2, ready_reserve=0), monitor)
    stalled = [upload() for _ in range(5)]
    for ctx in stalled:
        assert await stage.request_headers(ctx) is None
    assert monitor.in_flight == 0  # stalled uploads leave the budget to ready requests
    ready = context()
    assert await stage.request_headers(ready) is None
    assert monitor.in_flight == 1
    body_arrived(stalled[0])  # its last byte is in: now it is a request in flight
    assert monitor.in_flight == 2
    assert (await stage.request_headers(context())) is not None  # the budget is full
    for ctx in [ready, *stalled]:
        await stage.log(ctx)
    assert monitor.in_flight == 0  # every count was given back, uploads that never finished too


async def test_uploads_are_shed_first_keeping_a_reserve_for_ready_requests() -> None:
    monitor = LoadMonitor(asyncio.get_running_loop())
    stage = LoadShedStage(OverloadConfig(max_in_flight=4, ready_reserve=0.5), monitor)
    for _ in range(2):
        assert await stage.request_headers(context()) is None
    refused = await stage.request_headers(upload())
    assert refused is not None
    assert refused.reason == "overload.shed"
    assert await stage.request_headers(context()) is None  # the reserve is for these
    assert await stage.request_headers(context()) is None
    assert await stage.request_headers(context()) is not None
