"""Load shedding on event-loop lag and in-flight counts, in process."""

from __future__ import annotations

import asyncio
import time

from dijk.config.models import OverloadConfig
from dijk.pipeline.context import RequestContext
from dijk.stages.load_shed import LoadMonitor, LoadShedStage


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
