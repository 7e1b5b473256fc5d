"""Every line the gateway logs is one JSON object, libraries' records included."""

from __future__ import annotations

import asyncio
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from dijk import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    logs.configure("info", "json", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    text = buffer.getvalue()
    assert text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]  # fails on a non-JSON line


def _fail() -> None:
    raise ConnectionRefusedError("connect call failed ('127.0.0.1', 5432)")


def test_a_library_traceback_is_one_json_line_with_the_exception_as_a_field(
    stream: io.StringIO,
) -> None:
    import asyncpg.pool

    try:
        _fail()
    except ConnectionRefusedError:
        # What asyncpg logs when a pool cannot reconnect during a database outage.
        asyncpg.pool.logger.warning("Failed to restore the pool connection floor", exc_info=True)
    (line,) = _lines(stream)
    assert line["event"] == "Failed to restore the pool connection floor"
    assert line["level"] == "warning"
    assert line["logger"] == "asyncpg.pool"
    assert "Traceback" in line["exception"]
    assert "ConnectionRefusedError" in line["exception"]
    assert "timestamp" in line


def test_percent_arguments_of_library_records_are_formatted(stream: io.StringIO) -> None:
    logging.getLogger("aiohttp.client").error("retrying %s after %d ms", "jwks", 250)
    logging.getLogger("redis.connection").warning("reconnected to %s", "127.0.0.1:6379")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == [
        "retrying jwks after 250 ms",
        "reconnected to 127.0.0.1:6379",
    ]


def test_library_records_below_warning_are_dropped(stream: io.StringIO) -> None:
    logging.getLogger("asyncpg").debug("noise")
    logging.getLogger("aiohttp.access").info("noise")
    assert stream.getvalue() == ""


def test_an_unhandled_task_error_reported_by_asyncio_is_json(stream: io.StringIO) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        try:
            _fail()
        except ConnectionRefusedError as exc:
            loop.call_exception_handler(
                {"message": "Task exception was never retrieved", "exception": exc}
            )

    asyncio.run(main())
    (line,) = _lines(stream)
    assert line["logger"] == "asyncio"
    assert "ConnectionRefusedError" in line["exception"]


def test_warnings_are_json(stream: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    (line,) = _lines(stream)
    assert line["logger"] == "py.warnings"
    assert "deprecated thing" in line["event"]


def test_gateway_events_with_exceptions_stay_one_line(stream: io.StringIO) -> None:
    log = structlog.get_logger("dijk.test")
    try:
        _fail()
    except ConnectionRefusedError:
        log.exception("reload_failed", authorization="Bearer secret")
    (line,) = _lines(stream)
    assert line["event"] == "reload_failed"
    assert line["authorization"] == logs.REDACTED
    assert "ConnectionRefusedError" in line["exception"]


def test_configuring_twice_does_not_duplicate_lines(stream: io.StringIO) -> None:
    logs.configure("info", "json", stream=stream)
    logging.getLogger("asyncpg").warning("once")
    assert len(_lines(stream)) == 1
